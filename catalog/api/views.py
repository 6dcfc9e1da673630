"""Catalog endpoints: thin adapters from HTTP to catalog services and selectors."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors, services
from catalog.api import serializers as s
from config.api_errors import ApiError, error_responses
from ml.preprocess import ImageRejected


def _catalog_error(exc: services.CatalogError) -> ApiError:
    code = 409 if exc.code == "duplicate_sku" else 400
    return ApiError(code, exc.code, exc.message, exc.field)


def _get_product(product_id: int):
    product = selectors.product_get(product_id=product_id)
    if product is None:
        raise ApiError(404, "product_not_found", f"No product with id {product_id}.")
    return product


class ProductListApi(APIView):
    parser_classes = [JSONParser]
    # Declared on the view so the generated schema documents the paginated envelope it returns.
    pagination_class = LimitOffsetPagination

    @extend_schema(
        parameters=[s.ProductListQuery], responses={200: s.ProductOutput(many=True), **error_responses(400)}
    )
    def get(self, request: Request) -> Response:
        query = s.ProductListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.product_list(**query.validated_data)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(qs, request, view=self)
        data = s.ProductOutput(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(request=s.ProductInput, responses={201: s.ProductOutput, **error_responses(400, 401, 409)})
    def post(self, request: Request) -> Response:
        payload = s.ProductInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            product = services.product_create(**payload.validated_data)
        except services.CatalogError as exc:
            raise _catalog_error(exc) from exc
        return Response(s.ProductOutput(product, context={"request": request}).data, status=201)


class ProductDetailApi(APIView):
    parser_classes = [JSONParser]

    @extend_schema(responses={200: s.ProductOutput, **error_responses(404)})
    def get(self, request: Request, product_id: int) -> Response:
        product = _get_product(product_id)
        return Response(s.ProductOutput(product, context={"request": request}).data)

    @extend_schema(
        request=s.ProductPatchInput, responses={200: s.ProductOutput, **error_responses(400, 401, 404, 409)}
    )
    def patch(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, s.ProductPatchInput, only_sent=True)

    @extend_schema(
        request=s.ProductInput, responses={200: s.ProductOutput, **error_responses(400, 401, 404, 409)}
    )
    def put(self, request: Request, product_id: int) -> Response:
        return self._update(request, product_id, s.ProductInput, only_sent=False)

    def _update(self, request: Request, product_id: int, serializer, *, only_sent: bool) -> Response:
        product = _get_product(product_id)
        payload = serializer(data=request.data)
        payload.is_valid(raise_exception=True)
        fields = payload.validated_data
        if only_sent:  # PATCH changes what was sent; defaults for the rest must not overwrite
            fields = {k: v for k, v in fields.items() if k in request.data}
        try:
            product = services.product_update(product=product, **fields)
        except services.CatalogError as exc:
            raise _catalog_error(exc) from exc
        return Response(s.ProductOutput(_get_product(product.pk), context={"request": request}).data)

    @extend_schema(responses={204: None, **error_responses(401, 404)})
    def delete(self, request: Request, product_id: int) -> Response:
        services.product_delete(product=_get_product(product_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductImageListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(responses={200: s.ImageOutput(many=True), **error_responses(404)})
    def get(self, request: Request, product_id: int) -> Response:
        product = _get_product(product_id)
        images = selectors.image_list(product_id=product.pk)
        return Response(s.ImageOutput(images, many=True, context={"request": request}).data)

    @extend_schema(
        request=s.ImageUploadInput,
        responses={201: s.ImageOutput, 200: s.ImageOutput, **error_responses(400, 401, 404, 413)},
    )
    def post(self, request: Request, product_id: int) -> Response:
        product = _get_product(product_id)
        payload = s.ImageUploadInput(data=request.data)
        payload.is_valid(raise_exception=True)
        upload = payload.validated_data["image"]
        if upload.size is not None and upload.size > settings.MAX_UPLOAD_BYTES:
            raise ApiError(
                413,
                "image_too_large",
                f"The file is {upload.size:,} bytes; the limit is {settings.MAX_UPLOAD_BYTES:,}.",
            )
        data = upload.read()
        try:
            result = services.product_image_add(
                product=product,
                data=data,
                original_name=upload.name or "",
                display_order=payload.validated_data.get("display_order"),
            )
        except ImageRejected as exc:
            code = 413 if exc.code == "image_too_large" else 400
            api_code = exc.code if exc.code == "image_too_large" else "invalid_image"
            raise ApiError(code, api_code, f"{exc.message} ({exc.code})", "image") from exc
        body = s.ImageOutput(result.image, context={"request": request}).data
        return Response(body, status=201 if result.created else 200)


class ImageDetailApi(APIView):
    @extend_schema(responses={200: s.ImageOutput, **error_responses(404)})
    def get(self, request: Request, image_id: str) -> Response:
        image = selectors.image_get(image_id=image_id)
        if image is None:
            raise ApiError(404, "image_not_found", f"No image with id {image_id}.")
        return Response(s.ImageOutput(image, context={"request": request}).data)

    @extend_schema(responses={204: None, **error_responses(401, 404)})
    def delete(self, request: Request, image_id: str) -> Response:
        image = selectors.image_get(image_id=image_id)
        if image is None:
            raise ApiError(404, "image_not_found", f"No image with id {image_id}.")
        services.product_image_delete(image=image)
        return Response(status=status.HTTP_204_NO_CONTENT)
