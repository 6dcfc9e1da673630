"""Rate limits on the search endpoint."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView


class SearchThrottle(SimpleRateThrottle):
    """Anonymous clients by address at the ``search_anon`` rate, signed-in users by id at ``search_user``.

    One class with one cache round trip per request; DRF's Anon + User pair made two, and for an
    anonymous client the looser of the two never decided anything.
    """

    scope = "search_anon"

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.scope = "search_user" if request.user.is_authenticated else "search_anon"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        ident = request.user.pk if request.user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
