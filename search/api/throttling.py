"""Rate limits on the search endpoints (search, and the click events its answers lead to)."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from rest_framework.request import Request

from apikeys.models import ApiKey
from apikeys.throttling import KeyedThrottle


class SearchThrottle(KeyedThrottle):
    """Per API key at the key's rate; without a key, signed-in users by id at ``search_user`` and anonymous
    clients by address at ``search_anon`` (settings SEARCH_THROTTLE_*, TRUSTED_PROXIES)."""

    scope = "search"


class ImageUrlFetchThrottle(KeyedThrottle):
    """The budget of searches by ``image_url`` (each one a fetch of a URL the client chose), at
    ``search_url`` (SEARCH_IMAGE_URL_FETCHES) per client: a secret key (one shop's servers), else a
    signed-in user, else the client address, publishable keys included (a publishable key is public
    and serves every shopper; per key, one script would spend all of them). Checked by the view once
    it knows the search is by URL, not as one of the view's throttle classes."""

    scope = "search_url"

    def buckets(self, request: Request) -> list[tuple[str, str | None]]:
        return [self.bucket_and_rate(request)]  # already per address for publishable keys

    def bucket_and_rate(self, request: Request) -> tuple[str, str | None]:
        rate = self.THROTTLE_RATES.get(self.scope)
        key = request.auth
        if isinstance(key, ApiKey) and not key.is_publishable:
            return f"throttle:{self.scope}:key:{key.pk}", rate
        user = request.user
        if user and user.is_authenticated:
            return f"throttle:{self.scope}:user:{user.pk}", rate
        return f"throttle:{self.scope}:addr:{self.get_ident(request)}", rate


def client_of(request: Request) -> str:
    """Who made a request, for telling shoppers' clicks apart (search.log_selectors): ``user:<id>``
    for a signed-in user, else a keyed hash of the client address as the throttles see it (behind
    TRUSTED_PROXIES), so the log can count distinct clients without storing anyone's address."""
    user = request.user
    if user and user.is_authenticated:
        return f"user:{user.pk}"
    address = SearchThrottle().get_ident(request) or ""
    secret = settings.API_KEY_HASH_SECRET.encode()
    return "addr:" + hmac.new(secret, address.encode(), hashlib.sha256).hexdigest()[:32]
