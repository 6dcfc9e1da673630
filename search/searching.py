"""The similarity search service: query by photo, by product, or by image; filters; one hit per product."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.http import HttpRequest
from django.utils.encoding import filepath_to_uri

from catalog import selectors as catalog_selectors
from catalog.models import ProductImage
from ml.preprocess import ImageRejected, preprocess
from ml.serving import EmbedderError
from search import model_versions
from search.runtime import embedder_for, vector_store
from search.vector_store import SearchFilter, VectorStoreError


class SearchError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


@dataclass
class SearchQuery:
    image: bytes | None = None
    crop: tuple[int, int, int, int] | None = None
    product_id: int | None = None
    image_id: str | None = None
    limit: int = 12
    categories: list[str] = field(default_factory=list)
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None


@dataclass
class SearchHit:
    score: float
    image_id: str
    card: dict[str, Any]  # catalog_selectors.CARD_FIELDS of the matched image and its product


@dataclass
class SearchOutcome:
    model_version: int
    hits: list[SearchHit]
    timings_ms: dict[str, float]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _stored_vectors(collection: str, image_ids: list[str]) -> list[np.ndarray]:
    found = vector_store().retrieve(collection, image_ids, with_vectors=True)
    return [np.asarray(vec, np.float32) for vec, _ in found.values() if vec is not None]


def _query_vector(query: SearchQuery, model, timings: dict[str, float]) -> tuple[np.ndarray, list[int]]:
    """The vector to search with, and products to leave out of the results."""
    if query.image is not None:
        start = time.perf_counter()
        try:
            pixels = preprocess(
                query.image,
                model.image_size,
                crop=query.crop,
                max_bytes=settings.MAX_UPLOAD_BYTES,
                max_pixels=settings.MAX_IMAGE_PIXELS,
            )
        except ImageRejected as exc:
            if exc.code == "image_too_large":
                raise SearchError(413, "image_too_large", exc.message, "image") from exc
            if exc.code == "invalid_crop":
                raise SearchError(400, "invalid_parameter", exc.message, "crop") from exc
            raise SearchError(400, "invalid_image", f"{exc.message} ({exc.code})", "image") from exc
        timings["decode"] = _ms(start)
        start = time.perf_counter()
        vector = embedder_for(model).embed(pixels[None])[0]
        timings["embed"] = _ms(start)
        return vector, []

    timings["decode"] = 0.0
    start = time.perf_counter()
    if query.product_id is not None:
        image_ids = catalog_selectors.product_image_ids(product_id=query.product_id)
        if image_ids is None:
            raise SearchError(
                404, "product_not_found", f"No product with id {query.product_id}.", "product_id"
            )
        vectors = _stored_vectors(model.collection, image_ids) if image_ids else []
        if not vectors:
            raise SearchError(
                409, "not_indexed", f"Product {query.product_id} has no indexed image yet.", "product_id"
            )
        # The product's look is the mean of its photos' directions; cosine ignores the length.
        vector = np.mean(np.stack(vectors), axis=0)
        exclude = [query.product_id]
    else:
        image = catalog_selectors.image_get(image_id=query.image_id)
        if image is None:
            raise SearchError(404, "image_not_found", f"No image with id {query.image_id}.", "image_id")
        vectors = _stored_vectors(model.collection, [str(image.pk)])
        if not vectors:
            raise SearchError(409, "not_indexed", f"Image {query.image_id} is not indexed yet.", "image_id")
        vector = vectors[0]
        exclude = [image.product_id]
    timings["embed"] = _ms(start)  # a stored vector: the lookup stands in for embedding
    return vector, exclude


def search(query: SearchQuery) -> SearchOutcome:
    total_start = time.perf_counter()
    timings: dict[str, float] = {}
    model = model_versions.active_model_cached()
    if model is None:
        raise SearchError(503, "model_unavailable", "No model is active yet; the catalog is not searchable.")
    try:
        vector, exclude = _query_vector(query, model, timings)
        start = time.perf_counter()
        flt = SearchFilter(
            categories=query.categories or None,
            min_price=float(query.min_price) if query.min_price is not None else None,
            max_price=float(query.max_price) if query.max_price is not None else None,
            in_stock=query.in_stock,
            exclude_product_ids=exclude or None,
        )
        hits = vector_store().search(model.collection, vector, query.limit, flt, group_by_product=True)
        timings["search"] = _ms(start)
    except EmbedderError as exc:
        raise SearchError(503, "model_unavailable", f"The model server is unavailable: {exc}") from exc
    except VectorStoreError as exc:
        raise SearchError(503, "index_unavailable", f"The vector index is unavailable: {exc}") from exc
    start = time.perf_counter()
    # One query: each hit's matched image with its product (the image shown is the one that matched).
    # The catalog, not the vector payload, is the truth for what is shown: a title or price edited a
    # moment ago shows at once, and a product deleted a moment ago is not shown at all.
    cards = catalog_selectors.image_cards(h.image_id for h in hits)
    results = [
        SearchHit(score=float(h.score), image_id=h.image_id, card=cards[h.image_id])
        for h in hits
        if h.image_id in cards
    ]
    timings["catalog"] = _ms(start)
    timings["total"] = _ms(total_start)
    return SearchOutcome(model_version=model.version, hits=results, timings_ms=timings)


def url_builder(request: HttpRequest) -> Callable[[str], str]:
    """Absolute URLs for (already URL-quoted) paths, with the host validated once per request, not per hit."""
    origin = request.build_absolute_uri("/")[:-1]
    scheme = request.scheme

    def build(path: str) -> str:
        if path.startswith("//"):  # protocol-relative, e.g. a MEDIA_URL on a CDN
            return f"{scheme}:{path}"
        return path if "://" in path else origin + path

    return build


def describe_hit(
    hit: SearchHit, build_url: Callable[[str], str], file_url: Callable[[str], str]
) -> dict[str, Any]:
    card = hit.card
    return {
        "score": round(hit.score, 5),
        "image_id": hit.image_id,
        "product": {
            "id": card["product_id"],
            "sku": card["product__sku"],
            "title": card["product__title"],
            "category": card["product__category"],
            "price": card["product__price"],
            "currency": card["product__currency"],
            "in_stock": card["product__in_stock"],
            "url": build_url(f"/products/{card['product_id']}/"),
            "image_url": build_url(file_url(card["file"])) if card["file"] else None,
        },
    }


def describe_hits(hits: list[SearchHit], request: HttpRequest) -> list[dict[str, Any]]:
    """The public shape of each hit (the API's ``results``; the pages render the same dicts)."""
    build_url, file_url = url_builder(request), media_url_function()
    return [describe_hit(h, build_url, file_url) for h in hits]


def media_url_function() -> Callable[[str], str]:
    """``name -> URL`` for image files: ``storage.url``, minus its per-call ``urljoin`` on local disk.

    On a FileSystemStorage the URL is MEDIA_URL (which Django requires to end in "/") plus the
    URL-quoted name; a dozen ``urljoin`` calls were a tenth of the search view's own time.
    """
    storage = ProductImage._meta.get_field("file").storage
    if isinstance(storage, FileSystemStorage) and storage.base_url and storage.base_url.endswith("/"):
        base = storage.base_url
        return lambda name: base + filepath_to_uri(name).lstrip("/")
    return storage.url
