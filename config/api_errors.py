"""One error shape for the whole API: ``{"error": {"code", "message", "fields"?}}``.

Clients branch on ``code``; ``message`` is for people; ``fields`` maps a request field to its problems.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApiError(exceptions.APIException):
    """A domain error with its own HTTP status and machine-readable code."""

    def __init__(self, status_code: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.field = field


_DEFAULT_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        fields = {exc.field: [exc.message]} if exc.field else None
        return Response(error_body(exc.error_code, exc.message, fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _DEFAULT_CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.ValidationError):
        fields = (
            _flatten(exc.detail)
            if isinstance(exc.detail, dict)
            else {"non_field_errors": _flatten(exc.detail)}
        )
        first = next(iter(fields.values()), ["Invalid input."])
        first_msg = first[0] if isinstance(first, list) and first else str(first)
        if isinstance(first_msg, dict):
            first_msg = "Invalid input."
        field_name = next(iter(fields), "")
        message = (
            f"{field_name}: {first_msg}"
            if field_name and field_name != "non_field_errors"
            else str(first_msg)
        )
        response.data = error_body("invalid_parameter", message, fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
        return response
    if isinstance(exc, exceptions.Throttled):
        message = f"Too many requests; try again in {int(exc.wait or 1)} s."
    else:
        detail = getattr(exc, "detail", None)
        message = str(detail) if detail is not None else "Error."
        if hasattr(detail, "code") and detail.code not in (None, "error", "invalid"):
            code = {"parse_error": "invalid_request"}.get(str(detail.code), code)
    response.data = error_body(code, message)
    return response
