"""A sliding-window request counter in the shared cache (Redis when CACHE_URL names one), atomic
across processes.

Each client has one counter per fixed window of ``duration`` seconds; the estimate of requests in the
last ``duration`` seconds is ``previous * (1 - elapsed fraction) + current`` (the counting Cloudflare
described for its rate limiter). The counter is incremented first and taken back when the request is
refused, so concurrent requests from any number of processes are each counted exactly once and
refused requests do not lengthen the wait. The estimate assumes the previous window's requests were
spread evenly, so it can be off by a few requests at a window's start; it never lets a client through
at twice the rate, as a plain fixed window does at the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.core.cache import BaseCache


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait_s: float  # until a request would be allowed again, when refused; 0 when allowed


def _increment(cache: BaseCache, key: str, delta: int, timeout: int) -> int:
    try:
        return cache.incr(key, delta)
    except ValueError:  # the window's first request (or the key expired)
        if cache.add(key, delta, timeout):
            return delta
        return cache.incr(key, delta)


def hit(cache: BaseCache, bucket: str, limit: int, duration: int, now: float) -> Decision:
    window = math.floor(now / duration)
    elapsed = now / duration - window  # 0..1 through the current window
    current_key, previous_key = f"{bucket}:{window}", f"{bucket}:{window - 1}"
    # Kept two windows: the next window reads this one as its previous.
    current = _increment(cache, current_key, 1, timeout=2 * duration + 1)
    previous = cache.get(previous_key) or 0
    if previous * (1 - elapsed) + current <= limit:
        return Decision(True, 0.0)
    cache.decr(current_key)
    current -= 1
    if current + 1 <= limit and previous:
        # Within this window, once enough of the previous window's requests have aged out.
        wait_fraction = (1 - (limit - current - 1) / previous) - elapsed
    else:
        # In the next window, where this window's requests are the previous ones.
        wait_fraction = (1 - elapsed) + (1 - (limit - 1) / current if current else 0)
    return Decision(False, max(wait_fraction * duration, 0.0))
