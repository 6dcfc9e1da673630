"""Which browser origins get CORS headers (django-cors-headers asks through its ``check_request_enabled``
signal; settings CORS_URLS_REGEX limits it to the endpoints a web page may call).

- A request with a publishable key: only that key's origins (the key is refused elsewhere, with 403
  ``origin_not_allowed``; a revoked key still gets the headers, so the page can read why it failed).
- A preflight (which carries no key): any origin an active publishable key allows.
- A request with no key, or a key we do not know: the same union, so a shop page can read the error.
- A request with a secret key: never (secret keys belong on servers, not in pages).
Everything else gets no CORS headers, so the browser keeps the answer from the page.
"""

from __future__ import annotations

import re
from typing import Any

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.http import HttpRequest

from apikeys import keys, selectors


def origin_allowed(request: HttpRequest) -> bool:
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    origin = keys.normalize_origin(request.headers.get("origin"))
    if origin is None:
        return False
    if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
        return origin in selectors.publishable_origins()
    key = selectors.key_for_request(request)
    if key is None:
        return origin in selectors.publishable_origins()
    return key.is_publishable and origin in key.allowed_origins


def _on_check(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    return origin_allowed(request)


def connect() -> None:
    check_request_enabled.connect(_on_check, dispatch_uid="apikeys.cors")
