"""Catalog endpoints: thin adapters from HTTP to catalog services and selectors.

Errors are the services' CatalogError / ImageRejected; config/api_errors.py gives them their status.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.permissions import ReadOrWriteScope
from apikeys.throttling import KeyedThrottle
from catalog import image_limits, selectors, services
from catalog.api import serializers as s
from catalog.errors import CatalogError
from catalog.models import Product, ProductImage

WRITE_ERRORS = (
    "invalid_parameter",
    "not_authenticated",
    "invalid_api_key",
    "api_key_revoked",
    "permission_denied",
    "insufficient_scope",
)


class CatalogApiView(APIView):
    """Every catalog endpoint: anyone reads; writes need an API key with ``catalog:write``, or a staff
    user with the Django permission to add / change / delete the view's ``write_model``."""

    permission_classes = [ReadOrWriteScope("catalog:write")]  # type: ignore[list-item]  # DRF calls each entry; the stubs allow only classes (see HasScope)
    # An API key's rate limit covers all its requests; others are not limited here (no catalog_* rates).
    throttle_classes = [KeyedThrottle]
    write_model: type = Product


def _get_product(product_id: int) -> Product:
    product = selectors.product_get(product_id=product_id)
    if product is None:
        raise CatalogError("product_not_found", f"No product with id {product_id}.")
    return product


def _get_image(image_id: str) -> ProductImage:
    image = selectors.image_get(image_id=image_id)
    if image is None:
        raise CatalogError("image_not_found", f"No image with id {image_id}.")
    return image


class ProductListApi(CatalogApiView):
    parser_classes = [JSONParser]
    # Declared on the view so the generated schema documents the paginated envelope it returns.
    pagination_class = LimitOffsetPagination
    error_codes = {"get": ("invalid_parameter",), "post": (*WRITE_ERRORS, "duplicate_sku")}

    @extend_schema(parameters=[s.ProductListQuery], responses=s.ProductOutput(many=True))
    def get(self, request: Request) -> Response:
        query = s.ProductListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.product_list(**query.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        data = s.ProductOutput(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(request=s.ProductInput, responses={201: s.ProductOutput})
    def post(self, request: Request) -> Response:
        payload = s.ProductInput(data=request.data)
        payload.is_valid(raise_exception=True)
        product = services.product_create(**payload.validated_data)
        return Response(s.ProductOutput(product, context={"request": request}).data, status=201)


class ProductDetailApi(CatalogApiView):
    parser_classes = [JSONParser]
    error_codes = {
        "get": ("product_not_found",),
        "patch": (*WRITE_ERRORS, "product_not_found", "duplicate_sku"),
        "put": (*WRITE_ERRORS, "product_not_found", "duplicate_sku"),
        "delete": (*WRITE_ERRORS[1:], "product_not_found"),
    }

    @extend_schema(responses=s.ProductOutput)
    def get(self, request: Request, product_id: int) -> Response:
        product = _get_product(product_id)
        return Response(s.ProductOutput(product, context={"request": request}).data)

    @extend_schema(request=s.ProductPatchInput, responses=s.ProductOutput)
    def patch(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, s.ProductPatchInput, only_sent=True)

    @extend_schema(request=s.ProductInput, responses=s.ProductOutput)
    def put(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, s.ProductInput, only_sent=False)

    def _update(self, request: Request, product_id: int, serializer, *, only_sent: bool) -> Response:
        product = _get_product(product_id)
        payload = serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        fields = payload.validated_data
        if only_sent:  # PATCH changes what was sent; defaults for the rest must not overwrite
            fields = {k: v for k, v in fields.items() if k in request.data}
        product = services.product_update(product=product, **fields)
        return Response(s.ProductOutput(_get_product(product.pk), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, product_id: int) -> Response:
        services.product_delete(product=_get_product(product_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductImageListApi(CatalogApiView):
    write_model = ProductImage
    parser_classes = [MultiPartParser, FormParser]
    error_codes = {
        "get": ("product_not_found",),
        "post": (*WRITE_ERRORS, "product_not_found", "invalid_image", "image_too_large"),
    }

    @extend_schema(responses=s.ImageOutput(many=True))
    def get(self, request: Request, product_id: int) -> Response:
        product = _get_product(product_id)
        images = selectors.image_list(product_id=product.pk)
        return Response(s.ImageOutput(images, many=True, context={"request": request}).data)

    @extend_schema(
        parameters=[s.ImageUploadQuery],
        request=s.ImageUploadInput,
        responses={201: s.ImageOutput, 200: s.ImageOutput},
        description=(
            "Add a photo to the product (201), or find the same bytes already there (200). Indexing "
            "follows the upload; with `?wait=N` the answer comes once the image is indexed or failed, "
            "or after N seconds (at most 5), with the image's index_status as it then is."
        ),
    )
    def post(self, request: Request, product_id: int) -> Response:
        product = _get_product(product_id)
        query = s.ImageUploadQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        payload = s.ImageUploadInput(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["image"]
        image_limits.check_size(upload.size)
        result = services.product_image_add(
            product=product,
            data=upload.read(),
            original_name=upload.name or "",
            display_order=payload.validated_data.get("display_order"),
        )
        image = result.image
        wait = query.validated_data["wait"]
        if wait > 0:
            # A delete racing the wait returns the image as it was added (the row is gone).
            image = selectors.image_await_index(image_id=image.pk, timeout_s=wait) or image
        body = s.ImageOutput(image, context={"request": request}).data
        return Response(body, status=201 if result.created else 200)


class ImageDetailApi(CatalogApiView):
    write_model = ProductImage
    error_codes = {
        "get": ("image_not_found",),
        "delete": (*WRITE_ERRORS[1:], "image_not_found"),
    }

    @extend_schema(responses=s.ImageOutput)
    def get(self, request: Request, image_id: str) -> Response:
        return Response(s.ImageOutput(_get_image(image_id), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, image_id: str) -> Response:
        services.product_image_delete(image=_get_image(image_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
