"""Every read of API keys: the key a request carries, and the origins publishable keys allow."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest

from apikeys import keys
from apikeys.models import ApiKey, KeyKind

_REQUEST_ATTR = "_lookalike_api_key"
ORIGINS_CACHE_KEY = "apikeys:publishable-origins:v1"
# Changes clear the entry at once (services, on commit); the timeout only bounds how long an edit made
# outside the services (a shell, a restored backup) takes to show in preflight answers.
ORIGINS_CACHE_S = 300


def bearer_token(request: HttpRequest) -> str | None:
    """The key in ``Authorization: Bearer <key>``, or None when the header is absent or another scheme."""
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def key_by_secret(raw_key: str) -> ApiKey | None:
    """The key row (active or revoked) for a whole key, or None."""
    if not raw_key or keys.kind_of(raw_key) is None or len(raw_key) > 200:
        return None
    return ApiKey.objects.filter(digest=keys.digest(raw_key)).first()


def key_for_request(request: HttpRequest) -> ApiKey | None:
    """The key row the request's Bearer header names, looked up once per request (the CORS check and
    the authentication both ask)."""
    if not hasattr(request, _REQUEST_ATTR):
        token = bearer_token(request)
        setattr(request, _REQUEST_ATTR, key_by_secret(token) if token else None)
    found: ApiKey | None = getattr(request, _REQUEST_ATTR)
    return found


def publishable_origins() -> frozenset[str]:
    """Every origin some active publishable key allows (answers CORS preflights, which carry no key)."""
    origins: frozenset[str] | None = cache.get(ORIGINS_CACHE_KEY)
    if origins is None:
        rows = ApiKey.objects.filter(kind=KeyKind.PUBLISHABLE, revoked_at__isnull=True).values_list(
            "allowed_origins", flat=True
        )
        origins = frozenset(origin for row in rows for origin in row or [])
        cache.set(ORIGINS_CACHE_KEY, origins, ORIGINS_CACHE_S)
    return origins


def forget_publishable_origins() -> None:
    cache.delete(ORIGINS_CACHE_KEY)
