"""Shops that push: ``POST /api/v1/catalog/sync/`` takes an NDJSON feed (the JSONL manifest's fields,
images by URL only) and answers 202 with the queued run; ``GET /api/v1/catalog/sync/<id>/`` reads its
progress. The run is read and its images fetched off the request (workers, or the embedded thread)."""

from __future__ import annotations

from typing import BinaryIO, cast

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.throttling import KeyedThrottle
from catalog.api.parsers import NdjsonParser
from catalog.api.permissions import CanWriteCatalog
from catalog.api.sync_serializers import SyncPushQuery, SyncRunOutput
from catalog.errors import CatalogError
from catalog.models import SyncRun
from catalog.services.sync import sync_push_start

AUTH_ERRORS = (
    "not_authenticated",
    "invalid_api_key",
    "api_key_revoked",
    "permission_denied",
    "insufficient_scope",
)


class SyncPushApi(APIView):
    permission_classes = [CanWriteCatalog]
    throttle_classes = [KeyedThrottle]  # an API key's rate limit covers every request it makes
    parser_classes = [NdjsonParser]
    error_codes = {
        "post": (*AUTH_ERRORS, "invalid_parameter", "empty_feed", "feed_too_large", "unsupported_media_type")
    }

    @extend_schema(
        operation_id="catalog_sync_push",
        parameters=[SyncPushQuery],
        request={"application/x-ndjson": {"type": "string", "format": "binary"}},
        responses={202: SyncRunOutput},
        examples=[
            OpenApiExample(
                "Two products",
                value='{"sku": "TEE-1", "title": "Organic Tee", "price": "25.00 USD", '
                '"link": "https://shop.example/tee", "images": ["https://cdn.shop.example/tee.jpg"]}\n'
                '{"sku": "BAG-1", "title": "Canvas Tote", "price": 15, "currency": "EUR"}\n',
                request_only=True,
            )
        ],
        description=(
            "Queue a catalog sync of the NDJSON body: one JSON object per line with the fields of the JSONL "
            "manifest (sku, title, description, link, category, brand, price, currency, in_stock, attributes, "
            "images as http(s) URLs). Answers 202 with the run; follow its `url` for progress."
        ),
    )
    def post(self, request: Request) -> Response:
        query = SyncPushQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = request.data
        if not hasattr(body, "read"):  # no body at all: DRF hands over an empty dict
            raise CatalogError("empty_feed", "The request body is empty; send one JSON object per line.")
        # NdjsonParser (this view's only parser) hands over the raw binary body stream as the data.
        stream = cast(BinaryIO, body)
        run = sync_push_start(body=stream, user=request.user, full=query.validated_data["full"])
        data = SyncRunOutput(run, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class SyncRunApi(APIView):
    permission_classes = [CanWriteCatalog]
    throttle_classes = [KeyedThrottle]
    error_codes = {"get": (*AUTH_ERRORS, "sync_run_not_found")}

    @extend_schema(operation_id="catalog_sync_run", responses=SyncRunOutput)
    def get(self, request: Request, run_id: int) -> Response:
        run = SyncRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CatalogError("sync_run_not_found", f"No sync run with id {run_id}.")
        return Response(SyncRunOutput(run, context={"request": request}).data)
