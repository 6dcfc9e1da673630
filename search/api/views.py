from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from config.api_errors import ApiError
from search import searching
from search.api import serializers as s


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


class SearchApi(APIView):
    permission_classes = [AllowAny]
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_classes = [SearchThrottle]

    @extend_schema(
        request={"multipart/form-data": s.SearchInput, "application/json": s.SearchInput},
        responses={
            200: s.SearchOutput,
            400: s.ErrorOutput,
            404: s.ErrorOutput,
            409: s.ErrorOutput,
            413: s.ErrorOutput,
            429: s.ErrorOutput,
            503: s.ErrorOutput,
        },
        examples=[
            OpenApiExample(
                "More like this product", value={"product_id": 42, "limit": 12}, request_only=True
            ),
            OpenApiExample(
                "Photo with filters",
                value={"limit": 8, "category": ["Apple"], "max_price": "20"},
                request_only=True,
            ),
            OpenApiExample(
                "Not indexed yet",
                value={"error": {"code": "not_indexed", "message": "Product 42 has no indexed image yet."}},
                response_only=True,
                status_codes=["409"],
            ),
        ],
        description="Find the products that look most like a photo, a product or an image. One result per product.",
    )
    def post(self, request: Request) -> Response:
        payload = s.SearchInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        image_bytes = None
        if data.get("image") is not None:
            upload = data["image"]
            if upload.size is not None and upload.size > settings.MAX_UPLOAD_BYTES:
                raise ApiError(
                    413, "image_too_large", f"The file is larger than {settings.MAX_UPLOAD_BYTES:,} bytes."
                )
            image_bytes = upload.read()
        query = searching.SearchQuery(
            image=image_bytes,
            crop=data.get("crop"),
            product_id=data.get("product_id"),
            image_id=str(data["image_id"]) if data.get("image_id") else None,
            limit=data["limit"],
            categories=data.get("category") or [],
            min_price=data.get("min_price"),
            max_price=data.get("max_price"),
            in_stock=data.get("in_stock"),
        )
        try:
            outcome = searching.search(query)
        except searching.SearchError as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from exc
        body = {
            "model_version": outcome.model_version,
            "timings_ms": outcome.timings_ms,
            "results": searching.describe_hits(outcome.hits, request),
        }
        return Response(body)
