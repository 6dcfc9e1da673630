"""Rate limits on the search endpoints (search, and the click events its answers lead to)."""

from __future__ import annotations

from apikeys.throttling import KeyedThrottle


class SearchThrottle(KeyedThrottle):
    """Per API key at the key's rate; without a key, signed-in users by id at ``search_user`` and anonymous
    clients by address at ``search_anon`` (settings SEARCH_THROTTLE_*, TRUSTED_PROXIES)."""

    scope = "search"
