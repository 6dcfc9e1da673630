from __future__ import annotations

from functools import partial

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.models import ApiKey
from apikeys.permissions import ScopeIfKey
from catalog import image_limits
from search.api import serializers as s
from search.api.database_retry import read_through_restarts
from search.api.links import HitLinks
from search.api.presenters import search_answer
from search.api.throttling import ImageUrlFetchThrottle, SearchThrottle, client_of
from search.services import query_images, search_logs, searching

# Anyone may search (throttled per client address); with an API key, the key needs the search scope.
KEY_ERRORS = ("invalid_api_key", "api_key_revoked", "insufficient_scope", "origin_not_allowed")


class SearchApi(APIView):
    permission_classes = [ScopeIfKey("search")]  # type: ignore[list-item]  # DRF calls each entry; the stubs allow only classes (see HasScope)
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_classes = [SearchThrottle]
    error_codes = {
        "post": (
            "invalid_parameter",
            "invalid_image",
            "image_too_large",
            "image_url_refused",
            "image_url_unreachable",
            "product_not_found",
            "image_not_found",
            "not_indexed",
            "throttled",
            "model_unavailable",
            "index_unavailable",
            "query_empty",
            "query_too_long",
            *KEY_ERRORS,
        )
    }

    @extend_schema(
        request={"multipart/form-data": s.SearchInput, "application/json": s.SearchInput},
        responses=s.SearchOutput,
        examples=[
            OpenApiExample(
                "More like this product", value={"product_id": 42, "limit": 12}, request_only=True
            ),
            OpenApiExample("Words", value={"q": "alpro soy milk", "limit": 8}, request_only=True),
            OpenApiExample(
                "Photo by URL",
                value={"image_url": "https://cdn.shop.example/photos/42.jpg", "limit": 8},
                request_only=True,
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
        description=(
            "Find the products that look most like a photo (uploaded, by URL, or in base64), a product or an "
            "image, or whose words match `q`; `q` with a photo or product re-ranks its answer by the words. "
            "One result per product; each names the shop's product page (`product.link`)."
        ),
    )
    def post(self, request: Request) -> Response:
        payload = s.SearchInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        # Checked before a photo is fetched by URL: a request refused for its words costs nothing.
        text = searching.clean_text_query(data["q"]) if data.get("q") is not None else None
        image_bytes = data.get("image_base64")
        if data.get("image") is not None:
            upload = data["image"]
            image_limits.check_size(upload.size)
            image_bytes = upload.read()
        elif data.get("image_url") is not None:
            budget = ImageUrlFetchThrottle()
            if not budget.allow_request(request, self):
                self.throttled(request, budget.wait())
            image_bytes = query_images.image_from_url(data["image_url"])
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
            sku=data.get("sku"),
            text=text,
        )
        outcome = read_through_restarts(lambda: searching.search(query))
        # Built directly, not through s.SearchOutput (the schema above): see search/api/presenters.py.
        response = Response(search_answer(outcome, HitLinks(request)))
        # Logged once the answer has gone out (WSGI and ASGI servers close the response after sending
        # it): the shopper never waits for the INSERT (2-10 ms here under load; docs/benchmarks.md).
        log = partial(search_logs.search_log_record, query=query, outcome=outcome, api_key=_key(request),
                      user=request.user, client=client_of(request))  # fmt: skip
        # Django's response calls each of these private closers when the server closes it (after
        # sending); django-stubs leave the attribute out.
        response._resource_closers.append(log)  # type: ignore[attr-defined]
        return response


def _key(request: Request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class EventApi(APIView):
    """What a shopper did with a search's results (the widget reports clicks), keyed like the search."""

    permission_classes = [ScopeIfKey("search")]  # type: ignore[list-item]  # DRF calls each entry; the stubs allow only classes (see HasScope)
    parser_classes = [JSONParser]
    throttle_classes = [SearchThrottle]
    error_codes = {
        "post": ("invalid_parameter", "search_not_found", "result_not_shown", "throttled", *KEY_ERRORS)
    }

    @extend_schema(
        request=s.EventInput,
        responses={202: None},
        examples=[
            OpenApiExample(
                "A click on the second result",
                value={"search_id": "5b0c1b9e-6f3e-4a59-9d0e-3f4f3c0f7a11", "product_id": 12, "position": 2,
                       "type": "click"},
                request_only=True,
            )
        ],
        description="Record that a shopper followed a result of a search (202). The search must have been "
        "made with the same API key and have shown that product at that position. Repeats count once.",
    )  # fmt: skip
    def post(self, request: Request) -> Response:
        payload = s.EventInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        search_logs.search_click_record(
            search_id=data["search_id"],
            product_id=data["product_id"],
            position=data["position"],
            kind=data["type"],
            api_key=_key(request),
        )
        return Response(status=202)
