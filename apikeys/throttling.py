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
    that is not configured means no limit."""

    scope = "api"
    THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    cache = default_cache
    timer = time.time

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

    def allow_request(self, request: Request, view: APIView) -> bool:
        bucket, rate = self.bucket_and_rate(request)
        if not rate:
            return True
        limit, duration = keys.parse_rate(rate)
        decision = ratelimit.hit(self.cache, bucket, limit, duration, self.timer())
        self._wait = decision.wait_s
        return decision.allowed

    def wait(self) -> float | None:
        return max(1.0, self._wait)
