"""The similarity search: query by photo, by product, by image or by words; filters; one hit per
product. Words (``q``) alone search the text index (search/services/text_index.py); with a photo or
a product they re-rank its visual answer by reciprocal rank fusion of the two rankings. A photo
without ``q`` whose visual answer is not clear-cut is re-ranked by the words read on it
(search/services/text_rerank.py). On a catalog with one photo per product, the visual answer is
ordered by similarity plus each product's balance offset once one is fitted (search/services/balance.py).

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
from django.conf import settings
from PIL import Image

from catalog import image_limits
from catalog import selectors as catalog_selectors
from ml.calibration import label_hits
from ml.preprocess import load_cropped, to_model_input
from ml.serving import EmbedderError
from ml.text_tokens import terms
from search import selectors
from search.embedders import embedder_for
from search.errors import SearchError
from search.metrics import instruments
from search.models import ModelVersion
from search.services import balance
from search.services.calibration import says_no_match
from search.services.text_index import TEXT_COLLECTION
from search.services.text_rerank import TextRerank, rerank_by_text, rerank_params
from search.vector_store import (
    CollectionNotFound,
    Hit,
    SearchFilter,
    SparseVector,
    VectorStoreError,
    vector_store,
)

# The longest ``q``: a shopper types a product's name, a brand, a size, not a paragraph (and every
# word costs the index a lookup, each of its trigrams three more).
TEXT_QUERY_MAX_CHARS = 200
# Reciprocal rank fusion's constant (Cormack et al. 2009; Qdrant's Fusion.RRF uses the same 60): a
# product's fused score is the sum of 1 / (RRF_K + rank) over the rankings it is in, so one ranking's
# top hit cannot drown the other's without depending on how either one's scores are scaled.
RRF_K = 60
# Products each ranking offers the fusion, per result asked for: a product second in both rankings
# beats one first in only one, so the fusion needs more than the top ``limit`` of each.
FUSION_DEPTH = 3
# A text hit scoring under this share of the best one is left out: with trigrams nearly every product
# shares one with any word ("^sk" of "skyr" and "semi-skimmed"), so an uncut answer lists most of a
# catalog. Measured over the 81 Grocery products queried by their names: at 0.3 the answers shrink
# from about 22 products to about 5, and the right product stays in the top 5 as often (typed names
# 1.000, one typo 0.975, the last word alone 0.901); at 0.5 the last word alone falls to 0.889.
TEXT_MIN_SHARE = 0.3
# Text hits fetched per result asked for: a hit whose product was deleted, or has no image left to
# show, is dropped by the catalog.
TEXT_OVERFETCH = 2


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
    text: str | None = None  # words (``q``): alone, or re-ranking a photo's or a product's answer

    @property
    def visual(self) -> bool:
        """Whether there is a photo, product or image to look like (else words alone)."""
        return any(x is not None for x in (self.image, self.product_id, self.image_id, self.sku))


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
    # What the words read on the photo did to the answer (a photo without ``q`` only).
    text_rerank: TextRerank | None = None
    # A photo's query vector (unit length): logged with the search, for balanced answers.
    query_vector: np.ndarray | None = None
    # Whether the model's balance offsets (search/services/balance.py) put another product first.
    balanced: bool = False

    @property
    def reranked_by_text(self) -> bool:
        return self.text_rerank is not None and self.text_rerank.reranked


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)


def _stored_vectors(collection: str, image_ids: list[str]) -> list[np.ndarray]:
    return [vector for _, vector, _ in vector_store().vectors(collection, image_ids)]


def _query_vector(
    query: SearchQuery, model: ModelVersion, timings: dict[str, float]
) -> tuple[np.ndarray, list[int], Image.Image | None]:
    """The vector to search with, products to leave out of the results, and the decoded photo (whose
    words may re-rank the answer; None for a query by product or image).

    A rejected photo raises ml.preprocess.ImageRejected (the API maps its code once for every endpoint).
    """
    if query.image is not None:
        start = time.perf_counter()
        picture = load_cropped(query.image, crop=query.crop, **image_limits.limits())
        pixels = to_model_input(picture, model.image_size)
        timings["decode"] = _ms(start)
        start = time.perf_counter()
        vector = embedder_for(model).embed(pixels[None])[0]
        timings["embed"] = _ms(start)
        return vector, [], picture

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
    return vector, exclude, None


def clean_text_query(text: str) -> str:
    """``q`` as searched, or SearchError: blank, without a word or number, or too long (the API
    checks it before fetching a photo by URL)."""
    cleaned = " ".join(str(text).split())
    if len(cleaned) > TEXT_QUERY_MAX_CHARS:
        raise SearchError("query_too_long", f"q must be at most {TEXT_QUERY_MAX_CHARS} characters.", "q")
    if not terms(cleaned):
        raise SearchError("query_empty", "q has no word or number to search for.", "q")
    return cleaned


def _text_hits(text: str, flt: SearchFilter, limit: int) -> list[Hit]:
    weights = terms(clean_text_query(text))
    try:
        hits = vector_store().search_sparse(
            TEXT_COLLECTION, SparseVector(list(weights), list(weights.values())), limit, flt
        )
    except CollectionNotFound:  # nothing was ever written to the text index: no product has words
        return []
    return [h for h in hits if h.score >= TEXT_MIN_SHARE * hits[0].score] if hits else []


def _fuse(visual: list[Hit], text: list[Hit]) -> list[Hit]:
    """One ranking from two (reciprocal rank fusion), each product once, with the image the visual
    ranking matched where it has one; the score is the fused score."""
    fused: dict[int, float] = {}
    best: dict[int, Hit] = {}
    for ranking in (visual, text):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.product_id] = fused.get(hit.product_id, 0.0) + 1.0 / (RRF_K + rank)
            best.setdefault(hit.product_id, hit)
    order = sorted(fused, key=lambda pid: fused[pid], reverse=True)
    return [Hit(best[p].image_id, p, fused[p], best[p].payload) for p in order]


def _with_images(hits: list[Hit], from_text: set[int]) -> list[tuple[Hit, str]]:
    """Each hit with the image to show: the matched image of a visual hit, the product's first image
    for a hit from the text index (whose points are products, not images)."""
    first = catalog_selectors.primary_image_ids(product_ids=from_text) if from_text else {}
    shown = []
    for hit in hits:
        image_id = first.get(hit.product_id) if hit.product_id in from_text else hit.image_id
        if image_id is not None:
            shown.append((hit, image_id))
    return shown


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
    picture: Image.Image | None = None
    balanced = False
    try:
        if query.visual:
            vector, exclude, picture = _query_vector(query, model, timings)
        else:
            vector, exclude = None, []
            timings["decode"] = timings["embed"] = 0.0
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
        want = max(query.limit, 2)
        hits: list[Hit] = []
        # The words on a photo re-rank its first candidates (so many products), whatever ``limit``.
        read_text = picture is not None and query.text is None and settings.SEARCH_TEXT_RERANK
        params = rerank_params(model.kind)
        if read_text:
            want = max(want, params.candidates)
        # Photos only: the offsets were chosen and measured on shoppers' photos, not on "more like this".
        offsets = balance.active_offsets(model) if query.image is not None else None
        if vector is not None:
            depth = want if query.text is None else min(want * FUSION_DEPTH, 100)
            if offsets is not None:
                depth += balance.EXTRA_DEPTH
            hits = vector_store().search(
                model.collection, vector, depth, flt, group_by_product=True, beam=model.search_beam
            )
            if offsets is not None:
                hits, balanced = balance.reorder(hits, offsets)
                hits = hits[: depth - balance.EXTRA_DEPTH]
        from_text: set[int] = set()
        if query.text is not None:
            text_hits = _text_hits(query.text, flt, min(want * max(FUSION_DEPTH, TEXT_OVERFETCH), 100))
            if vector is None:
                hits = text_hits
                from_text = {h.product_id for h in hits}
            else:
                # Products only the words found have no matched image: they show their first one.
                from_text = {h.product_id for h in text_hits} - {h.product_id for h in hits}
                hits = _fuse(hits, text_hits)
        timings["search"] = _ms(start)
    except EmbedderError as exc:
        raise SearchError("model_unavailable", f"The model server is unavailable: {exc}") from exc
    except VectorStoreError as exc:
        raise SearchError("index_unavailable", f"The vector index is unavailable: {exc}") from exc
    text_rerank = None
    timings["read_text"] = 0.0
    if read_text and picture is not None:
        hits, text_rerank = rerank_by_text(hits, picture, flt, params)
        timings["read_text"] = text_rerank.ms
    start = time.perf_counter()
    # One query: each hit's matched image with its product (the image shown is the one that matched).
    # The catalog, not the vector payload, is the truth for what is shown: a title or price edited a
    # moment ago shows at once, and a product deleted a moment ago is not shown at all.
    shown = _with_images(hits, from_text)
    cards = catalog_selectors.image_cards(image_id for _, image_id in shown)
    results = [
        SearchHit(score=float(h.score), image_id=image_id, card=cards[image_id])
        for h, image_id in shown
        if image_id in cards
    ]
    no_match = None
    # Only a photo gets a verdict: a query by product or stored image ("more like this") leaves that
    # product out and asks for similar products, so "no exact match" would be true of every answer and
    # say nothing (it headed a product page's "looks similar" block once).
    # Words re-rank the answer and its scores are fused ranks, not similarities: no verdict then. Nor
    # when the words on the photo changed the order: the first hit is no longer the most similar one,
    # and the thresholds were calibrated on the visual answer alone.
    reranked = text_rerank is not None and text_rerank.reranked
    # Likewise when the balance offsets put another product first: the verdict's thresholds were
    # calibrated on the similarity order.
    if model.calibration and query.image is not None and query.text is None and not reranked and not balanced:
        for hit, label in zip(
            results, label_hits([h.score for h in results], model.calibration), strict=True
        ):
            hit.match = label
        no_match = not any(h.match == "same" for h in results)
        if no_match and not says_no_match(model.calibration):
            no_match = None  # thresholds from catalog views: "no match" would head the right answers too
    results = results[: query.limit]
    timings["catalog"] = _ms(start)
    timings["total"] = _ms(total_start)
    _observe(query, model, timings, text_rerank)
    return SearchOutcome(
        model_version=model.version,
        model_kind=model.kind,
        hits=results,
        timings_ms=timings,
        no_match=no_match,
        text_rerank=text_rerank,
        query_vector=vector if query.image is not None else None,
        balanced=balanced,
    )


def _observe(
    query: SearchQuery, model: ModelVersion, timings: dict[str, float], text_rerank: TextRerank | None
) -> None:
    """The metrics of a finished search, from the timings the response reports (one measurement)."""
    if text_rerank is None or not text_rerank.ms:
        # The reading stage's histogram counts the searches that read their photo, not the zeros.
        timings = {k: v for k, v in timings.items() if k != "read_text"}
    if not query.visual:
        instruments.observe_search(timings, "text")
    elif query.image is not None:
        instruments.observe_search(timings, "photo")
        instruments.observe_embedding(
            model_version=model.version, purpose="query", images=1, seconds=timings["embed"] / 1000.0
        )
    else:
        instruments.observe_search(timings, "product" if query.product_id is not None else "image")
