"""The OpenAPI schema's error responses, generated from what each view says it can answer.

A view lists the error codes of each method (``error_codes = {"post": ("duplicate_sku", ...)}``);
this schema class looks each code up in config/api_errors.ERRORS and documents one ErrorOutput
response per status, naming the codes it may carry. Views therefore hold no HTTP statuses for
errors, and a code's status is written down once.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from config.api_errors import ErrorOutput, status_for

# Credentials are checked before any view runs, so an operation that takes them (even one anybody may
# call without) answers bad ones with a 401: an unknown or revoked API key, a wrong token.
CREDENTIAL_ERRORS = ("not_authenticated", "invalid_api_key", "api_key_revoked")


class ApiSchema(AutoSchema):
    def _error_codes(self) -> tuple[str, ...]:
        declared = getattr(self.view, "error_codes", None) or {}
        codes = tuple(declared.get(self.method.lower(), ()))
        if any(requirement for requirement in self.get_auth()):
            codes += tuple(code for code in CREDENTIAL_ERRORS if code not in codes)
        return codes

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        bodies = super()._get_response_bodies(direction)
        by_status: dict[int, list[str]] = {}
        for code in self._error_codes():
            by_status.setdefault(status_for(code), []).append(code)
        for status, codes in sorted(by_status.items()):
            key = str(status)
            if key not in bodies:
                bodies[key] = self._get_response_for_code(ErrorOutput, key, direction=direction)
            bodies[key]["description"] = "Error codes: " + ", ".join(sorted(codes)) + "."
        return dict(sorted(bodies.items()))
