"""The similarity search: query by photo, by product, or by image; filters; one hit per product.

Data in (``SearchQuery``), data out (``SearchOutcome``); the API and the pages present the outcome
with one serializer (search/api/serializers.py).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from catalog import image_limits
from catalog import selectors as catalog_selectors
from ml.calibration import label_hits
from ml.preprocess import preprocess
from ml.serving import EmbedderError
from search import selectors
from search.embedders import embedder_for
from search.errors import SearchError
from search.metrics import instruments
from search.models import ModelVersion
from search.vector_store import SearchFilter, VectorStoreError, vector_store


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
    sku: str | None = None  # "more like the product with this SKU" (the storefront's similar block)


@dataclass
class SearchHit:
    score: float
    image_id: str
    card: dict[str, Any]  # catalog.selectors.CARD_KEYS of the matched image and its product
    # "same" (this is the product) or "similar", by the model's calibration; None when uncalibrated.
    match: str | None = None


@dataclass
class SearchOutcome:
    model_version: int
    hits: list[SearchHit]
    timings_ms: dict[str, float]
    # Names this answer in the search log and in the click events that follow it.
    search_id: uuid.UUID = field(default_factory=uuid.uuid4)
    model_kind: str = ""  # search.models.ModelKind: the pretrained backbone, or trained on the catalog
    # True when no hit is "same": nothing in the catalog is the photographed product (None: the model
    # is not calibrated, so the answer cannot say, or the query was no photo but a product or image).
    no_match: bool | None = None


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _stored_vectors(collection: str, image_ids: list[str]) -> list[np.ndarray]:
    found = vector_store().retrieve(collection, image_ids, with_vectors=True)
    return [np.asarray(vec, np.float32) for vec, _ in found.values() if vec is not None]


def _query_vector(
    query: SearchQuery, model: ModelVersion, timings: dict[str, float]
) -> tuple[np.ndarray, list[int]]:
    """The vector to search with, and products to leave out of the results.

    A rejected photo raises ml.preprocess.ImageRejected (the API maps its code once for every endpoint).
    """
    if query.image is not None:
        start = time.perf_counter()
        pixels = preprocess(query.image, model.image_size, crop=query.crop, **image_limits.limits())
        timings["decode"] = _ms(start)
        start = time.perf_counter()
        vector = embedder_for(model).embed(pixels[None])[0]
        timings["embed"] = _ms(start)
        return vector, []

    timings["decode"] = 0.0
    start = time.perf_counter()
    product_id = product_id_for_sku(query.sku) if query.sku is not None else query.product_id
    if product_id is not None:
        image_ids = catalog_selectors.product_image_ids(product_id=product_id)
        if image_ids is None:
            raise SearchError("product_not_found", f"No product with id {product_id}.", "product_id")
        vectors = _stored_vectors(model.collection, image_ids) if image_ids else []
        if not vectors:
            raise SearchError("not_indexed", f"Product {product_id} has no indexed image yet.", "product_id")
        # The product's look is the mean of its photos' directions; cosine ignores the length.
        vector = np.mean(np.stack(vectors), axis=0)
        exclude = [product_id]
    else:
        image = catalog_selectors.image_get(image_id=query.image_id) if query.image_id is not None else None
        if image is None or not image.product.active:
            raise SearchError("image_not_found", f"No image with id {query.image_id}.", "image_id")
        vectors = _stored_vectors(model.collection, [str(image.pk)])
        if not vectors:
            raise SearchError("not_indexed", f"Image {query.image_id} is not indexed yet.", "image_id")
        vector = vectors[0]
        exclude = [image.product_id]
    timings["embed"] = _ms(start)  # a stored vector: the lookup stands in for embedding
    return vector, exclude


def product_id_for_sku(sku: str) -> int:
    product = catalog_selectors.product_get_by_sku(sku=sku)
    if product is None or not product.active:  # a product a sync deactivated is no longer in the shop
        raise SearchError("product_not_found", f"No product with sku {sku!r}.", "sku")
    return product.pk


def search(query: SearchQuery) -> SearchOutcome:
    total_start = time.perf_counter()
    timings: dict[str, float] = {}
    model = selectors.active_model_cached()
    if model is None:
        # Never made here: a shopper does not wait for an export (the first import or upload makes it).
        raise SearchError(
            "model_unavailable",
            "No model is active yet; the catalog is not searchable until its first import.",
        )
    try:
        vector, exclude = _query_vector(query, model, timings)
        start = time.perf_counter()
        flt = SearchFilter(
            categories=query.categories or None,
            min_price=float(query.min_price) if query.min_price is not None else None,
            max_price=float(query.max_price) if query.max_price is not None else None,
            in_stock=query.in_stock,
            exclude_product_ids=exclude or None,
            active=True,  # products a sync deactivated leave every search at once
        )
        # Two hits at least: whether the first is "the same product" depends on its lead over the second.
        hits = vector_store().search(
            model.collection,
            vector,
            max(query.limit, 2),
            flt,
            group_by_product=True,
            beam=model.search_beam,
        )
        timings["search"] = _ms(start)
    except EmbedderError as exc:
        raise SearchError("model_unavailable", f"The model server is unavailable: {exc}") from exc
    except VectorStoreError as exc:
        raise SearchError("index_unavailable", f"The vector index is unavailable: {exc}") from exc
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
    no_match = None
    # Only a photo gets a verdict: a query by product or stored image ("more like this") leaves that
    # product out and asks for similar products, so "no exact match" would be true of every answer and
    # say nothing (it headed a product page's "looks similar" block once).
    if model.calibration and query.image is not None:
        for hit, label in zip(
            results, label_hits([h.score for h in results], model.calibration), strict=True
        ):
            hit.match = label
        no_match = not any(h.match == "same" for h in results)
    results = results[: query.limit]
    timings["catalog"] = _ms(start)
    timings["total"] = _ms(total_start)
    _observe(query, model, timings)
    return SearchOutcome(
        model_version=model.version,
        model_kind=model.kind,
        hits=results,
        timings_ms=timings,
        no_match=no_match,
    )


def _observe(query: SearchQuery, model: ModelVersion, timings: dict[str, float]) -> None:
    """The metrics of a finished search, from the timings the response reports (one measurement)."""
    if query.image is not None:
        instruments.observe_search(timings, "photo")
        instruments.observe_embedding(
            model_version=model.version, purpose="query", images=1, seconds=timings["embed"] / 1000.0
        )
    else:
        instruments.observe_search(timings, "product" if query.product_id is not None else "image")
