"""Rate limits keyed by API key, else by signed-in user, else by client address, counted in the shared
cache so every web process sees the same counts."""

from __future__ import annotations

import time

from django.core.cache import cache as default_cache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from apikeys import keys, ratelimit
from apikeys.models import ApiKey


class KeyedThrottle(BaseThrottle):
    """One bucket per API key (at the key's own rate, else ``api_key_<kind>``), shared by every endpoint
    the key calls; without a key, one per user at ``<scope>_user`` or per client address at
    ``<scope>_anon`` (the address as DRF's NUM_PROXIES, i.e. settings TRUSTED_PROXIES, says). A rate
    that is not configured means no limit.

    A publishable key is public (it is in the shop's pages) and any script can send the Origin it
    needs, so a request with one also counts per client address under that key, at
    ``api_key_publishable_address``: one client copying the key cannot spend the shop's whole rate,
    which the shop's many shoppers share."""

    scope = "api"
    # djangorestframework-stubs type DEFAULT_THROTTLE_RATES's values as numbers, but DRF's rates are
    # strings such as "100/min" (its own BaseThrottle.THROTTLE_RATES is typed so): the settings stub is wrong.
    THROTTLE_RATES: dict[str, str | None] = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]
    cache = default_cache
    timer = staticmethod(time.time)

    def __init__(self) -> None:
        self._wait = 0.0

    def bucket_and_rate(self, request: Request) -> tuple[str, str | None]:
        key = request.auth
        if isinstance(key, ApiKey):
            return f"throttle:key:{key.pk}", key.rate or self.THROTTLE_RATES.get(f"api_key_{key.kind}")
        user = request.user
        if user and user.is_authenticated:
            return f"throttle:{self.scope}:user:{user.pk}", self.THROTTLE_RATES.get(f"{self.scope}_user")
        return (
            f"throttle:{self.scope}:addr:{self.get_ident(request)}",
            self.THROTTLE_RATES.get(f"{self.scope}_anon"),
        )

    def buckets(self, request: Request) -> list[tuple[str, str | None]]:
        """Every (bucket, rate) the request counts against, the narrowest first."""
        buckets = [self.bucket_and_rate(request)]
        key = request.auth
        if isinstance(key, ApiKey) and key.is_publishable:
            rate = self.THROTTLE_RATES.get("api_key_publishable_address")
            buckets.insert(0, (f"throttle:key:{key.pk}:addr:{self.get_ident(request)}", rate))
        return buckets

    def allow_request(self, request: Request, view: APIView) -> bool:
        # The narrowest bucket first: a client over its own share is refused before it counts
        # against the shared one (a request refused by a later bucket stays counted in the earlier,
        # narrower ones, which only shortens that one client's allowance).
        for bucket, rate in self.buckets(request):
            if not rate:
                continue
            limit, duration = keys.parse_rate(rate)
            decision = ratelimit.hit(self.cache, bucket, limit, duration, self.timer())
            if not decision.allowed:
                self._wait = decision.wait_s
                return False
        return True

    def wait(self) -> float:
        return max(1.0, self._wait)
