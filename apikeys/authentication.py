"""``Authorization: Bearer <key>`` for DRF. A known, active key authenticates the request as that key
(``request.auth`` is the ApiKey, ``request.user`` stays anonymous: keys belong to shops, not people).
A publishable key is honoured only with an Origin header it names."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apikeys import keys, selectors, services
from apikeys.models import ApiKey


class KeyRefused(exceptions.AuthenticationFailed):
    """401 with a machine-readable code (``invalid_api_key``, ``api_key_revoked``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


def _origin_refused(message: str) -> exceptions.PermissionDenied:
    return exceptions.PermissionDenied(message, code="origin_not_allowed")


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        http_request = request._request
        token = selectors.bearer_token(http_request)
        if token is None:
            return None  # no Bearer header: other authenticators (Token, session) may apply
        key = selectors.key_for_request(http_request)
        if key is None:
            raise KeyRefused("invalid_api_key", "Unknown API key.")
        if not key.is_active:
            raise KeyRefused("api_key_revoked", f"The API key {key.prefix}… was revoked.")
        if key.is_publishable:
            origin = keys.normalize_origin(http_request.headers.get("origin"))
            if origin is None:
                # What the Origin check gives: a browser sets Origin itself and no page can forge
                # it, so another site's page cannot spend this shop's key from its visitors'
                # browsers. It does not stop a script, which can send any Origin it likes: a
                # publishable key is public and only ever allowed to search and report clicks.
                # What bounds a script is the rate limit, counted per key and, for publishable
                # keys, per client address under the key (apikeys/throttling.py).
                raise _origin_refused(
                    f"The publishable key {key.prefix}… is for web pages; the request has no Origin."
                )
            if origin not in key.allowed_origins:
                raise _origin_refused(f"The publishable key {key.prefix}… is not allowed on {origin}.")
        services.api_key_touch(key=key)
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to missing or bad credentials, naming the scheme to use.
        return 'Bearer realm="api"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the scheme in the OpenAPI schema (drf-spectacular finds it by ``target_class``)."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: pk_... (publishable, search only, from its allowed origins) or "
            "sk_... (secret, scoped: search, catalog:write, admin).",
        }
