"""Making, hashing and checking keys, and the rules a key's settings follow (one place for the admin
form, the management command and the services).

Keys are stored as HMAC-SHA256(API_KEY_HASH_SECRET, key), not with a password hash such as PBKDF2: a
key is 256 random bits, so no guess list exists for a slow hash to slow down; a stolen digest is as
hard to reverse either way. A password hash would instead cost every API request its full work
factor (Django's PBKDF2 takes hundreds of milliseconds by design) and hand anyone with invalid keys
a way to burn the server's CPU. The server-side secret adds that a copy of the database alone cannot
even test a candidate key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

from django.conf import settings

from apikeys.errors import ApiKeyError
from apikeys.models import KeyKind, Scope

PREFIXES = {KeyKind.PUBLISHABLE: "pk_", KeyKind.SECRET: "sk_"}
KEY_BYTES = 32  # 256 bits of randomness per key
SHOWN_PREFIX_CHARS = 8  # "pk_" and 5 characters: recognisable, far too short to guess the rest from
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_PERIOD_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def new_key(kind: str) -> str:
    return PREFIXES[KeyKind(kind)] + secrets.token_urlsafe(KEY_BYTES)


def digest(raw_key: str) -> str:
    secret = settings.API_KEY_HASH_SECRET.encode()
    return hmac.new(secret, raw_key.encode(), hashlib.sha256).hexdigest()


def kind_of(raw_key: str) -> str | None:
    """The kind a key's prefix claims, or None when it has neither prefix (no key of ours)."""
    for kind, prefix in PREFIXES.items():
        if raw_key.startswith(prefix):
            return kind
    return None


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` -> (600, 60): requests per period in seconds."""
    match = _RATE.match(rate or "")
    if not match or int(match.group(1)) < 1:
        raise ApiKeyError(
            "invalid_rate", f"Rate {rate!r} is not like 600/min (per s, min, hour or day).", "rate"
        )
    return int(match.group(1)), _PERIOD_S[match.group(2)[0]]


def normalize_origin(value: str | None) -> str | None:
    """A web origin as browsers send it in ``Origin``: scheme://host[:port], lowercase, no default port,
    no path. None for anything that is not an http(s) origin (including the browsers' "null")."""
    if not value:
        return None
    try:
        url = urlsplit(value.strip())
        port = url.port
    except ValueError:
        return None
    if url.scheme not in _DEFAULT_PORTS or not url.hostname or url.username or url.password:
        return None
    host = url.hostname.lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[url.scheme]:
        host = f"{host}:{port}"
    return f"{url.scheme}://{host}"


def check_origin(value: str) -> str:
    origin = normalize_origin(value)
    if origin is None or urlsplit(value.strip()).path not in ("", "/"):
        raise ApiKeyError(
            "invalid_origin", f"{value!r} is not a web origin like https://shop.example (no path).", "origins"
        )
    return origin


def check_key_settings(
    *, kind: str, scopes: list[str] | None, origins: list[str] | None, rate: str
) -> tuple[list[str], list[str], str]:
    """(scopes, origins, rate) cleaned, or ApiKeyError naming what is wrong.

    Publishable keys live in web pages for anyone to read, so they get the search scope only and must
    name the origins whose pages use them; secret keys are for servers, which send no origin.
    """
    if kind not in KeyKind.values:
        raise ApiKeyError("invalid_parameter", f"Unknown key kind {kind!r}.", "kind")
    scopes = sorted(set(scopes or ([Scope.SEARCH.value] if kind == KeyKind.PUBLISHABLE else [])))
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise ApiKeyError(
            "invalid_scope", f"Unknown scope {unknown[0]!r}; scopes are {', '.join(Scope.values)}.", "scopes"
        )
    if not scopes:
        raise ApiKeyError("invalid_scope", "A secret key needs at least one scope.", "scopes")
    cleaned_origins = sorted({check_origin(o) for o in origins or []})
    if kind == KeyKind.PUBLISHABLE:
        if scopes != [Scope.SEARCH.value]:
            raise ApiKeyError(
                "invalid_scope", "A publishable key is public: it can have the search scope only.", "scopes"
            )
        if not cleaned_origins:
            raise ApiKeyError(
                "invalid_origin", "A publishable key needs at least one allowed origin.", "origins"
            )
    elif cleaned_origins:
        raise ApiKeyError(
            "invalid_origin", "Secret keys are for servers; only publishable keys take origins.", "origins"
        )
    rate = (rate or "").strip()
    if rate:
        parse_rate(rate)
    return scopes, cleaned_origins, rate
