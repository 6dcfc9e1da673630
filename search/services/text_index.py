"""The text index: one point per product in the vector store's text collection, its words as a
sparse vector (ml.text_tokens.terms), for search by words.

A product's text is its title, brand, attributes, description and the words read on its images
(search.ImageText). Written when the product changes, when it gains images, and when an image's text
is read (workers/subscribers.py, search/services/image_text.py); ``manage.py rebuild_text_index``
writes every product again and removes the points of products that are gone.

Why a collection of its own, and not a named sparse vector beside each image's dense vector: the
text is the product's, not an image's (a point per image would repeat it, and the IDF would count a
product once per photo), and it does not depend on the image model, so a model switch or a re-index
of the images leaves it alone. The payload carries the same filter fields as an image point, so
the same SearchFilter applies.

Only products with at least one image are written: a search hit is shown as an image card.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from catalog.models import Product
from ml.text_tokens import terms
from search.models import ImageText, TextStatus
from search.payloads import point_payload
from search.vector_store import SparseVector, VectorStoreError, vector_store

log = logging.getLogger(__name__)

# Bump the suffix when ml.text_tokens.terms changes what a text becomes: a new collection is then
# filled by ``rebuild_text_index`` while the old one keeps answering (see ``TEXT_COLLECTION`` users).
TEXT_PREFIX = "text_"
TEXT_COLLECTION = TEXT_PREFIX + "v1"
# model_version in a text point's payload: it belongs to no image model.
TEXT_MODEL_VERSION = "text"
BATCH = 500  # products per write (about 40 terms each: small requests)
_NAMESPACE = uuid.UUID("5d0b7a0c-3f2e-4f7e-9a53-2f1b8f6c6e11")


def point_id(product_id: int) -> str:
    """The text point of a product: the same id at every write, so a write replaces it."""
    return str(uuid.uuid5(_NAMESPACE, f"product-{int(product_id)}"))


def _attribute_words(value: Any) -> Iterator[str]:
    # Values only: keys ("colour", "size") are the same across a catalog and say nothing of a product.
    if isinstance(value, dict):
        for item in value.values():
            yield from _attribute_words(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _attribute_words(item)
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield str(value)


def product_text(product: Product, image_texts: Iterable[str] = ()) -> str:
    """Everything a shopper might type to find ``product``, as one text."""
    parts = [product.title, product.brand, *_attribute_words(product.attributes), product.description]
    parts.extend(image_texts)
    return "\n".join(p for p in parts if p)


def _image_texts(product_ids: list[int]) -> dict[int, list[str]]:
    rows = (
        ImageText.objects.filter(image__product_id__in=product_ids, status=TextStatus.READ)
        .exclude(text="")
        .order_by("image__display_order", "image_id")
        .values_list("image__product_id", "text")
    )
    found: dict[int, list[str]] = {}
    for product_id, text in rows:
        found.setdefault(product_id, []).append(text)
    return found


def _points(products: list[Product]) -> list[tuple[str, SparseVector, dict[str, Any]]]:
    texts = _image_texts([p.pk for p in products])
    points = []
    for product in products:
        weights = terms(product_text(product, texts.get(product.pk, ())))
        payload = point_payload(product, TEXT_MODEL_VERSION).to_dict()
        points.append((point_id(product.pk), SparseVector(list(weights), list(weights.values())), payload))
    return points


def _with_images(product_ids: Iterable[int] | None = None) -> QuerySet[Product]:
    qs = Product.objects.filter(images__isnull=False).distinct().order_by("pk")
    return qs if product_ids is None else qs.filter(pk__in=list(product_ids))


def sync_products_text(product_ids: Iterable[int]) -> int:
    """Write the text points of ``product_ids`` as the catalog has them now; a product that is gone
    or has no image left loses its point. Returns how many points were written."""
    ids = sorted({int(p) for p in product_ids})
    if not ids:
        return 0
    store = vector_store()
    store.ensure_sparse_collection(TEXT_COLLECTION)
    products = list(_with_images(ids))
    written = store.upsert_sparse(TEXT_COLLECTION, _points(products)) if products else 0
    for gone in set(ids) - {p.pk for p in products}:
        store.delete_by_product(TEXT_COLLECTION, gone)
    return written


def sync_images_text(image_ids: Iterable[str]) -> int:
    """Write the text points of the products of new images that have none yet (their first image).

    A new image changes nothing in a point that exists: the text is the product's (rewritten when it
    changes) and the words read on the image (rewritten when they are read). Skipping those saves a
    write per upload; a burst of uploads to known products costs one read of the store."""
    ids = [str(i) for i in image_ids]
    product_ids = sorted(set(Product.objects.filter(images__id__in=ids).values_list("pk", flat=True)))
    if not product_ids:
        return 0
    store = vector_store()
    store.ensure_sparse_collection(TEXT_COLLECTION)
    have = store.retrieve(TEXT_COLLECTION, [point_id(p) for p in product_ids])
    return sync_products_text([p for p in product_ids if point_id(p) not in have])


def sync_products_text_quietly(product_ids: Iterable[int]) -> str | None:
    """As ``sync_products_text``, for callers whose own work must not fail by it (reading an image's
    text): a store that is down or held by another process is logged and its message returned, and
    ``rebuild_text_index`` (or the reconcile job) writes the points later."""
    try:
        sync_products_text(product_ids)
    except VectorStoreError as exc:
        log.warning("the text index was not updated: %s", exc)
        return str(exc)
    return None


@dataclass
class TextIndexRebuild:
    written: int = 0
    removed: int = 0


def rebuild_text_index(progress: Callable[[int], None] | None = None) -> TextIndexRebuild:
    """Write every product's text point again, then remove the points of products that are gone
    (searches go on meanwhile: each point is replaced in place)."""
    store = vector_store()
    store.ensure_sparse_collection(TEXT_COLLECTION)
    outcome = TextIndexRebuild()
    live: set[int] = set()
    batch: list[Product] = []
    for product in _with_images().iterator(chunk_size=BATCH):
        batch.append(product)
        if len(batch) == BATCH:
            outcome.written += store.upsert_sparse(TEXT_COLLECTION, _points(batch))
            live.update(p.pk for p in batch)
            batch = []
            if progress is not None:
                progress(outcome.written)
    if batch:
        outcome.written += store.upsert_sparse(TEXT_COLLECTION, _points(batch))
        live.update(p.pk for p in batch)
    stale = {
        int(payload["product_id"])
        for _, payload in store.scroll_ids(TEXT_COLLECTION)
        if int(payload.get("product_id", -1)) not in live
    }
    for product_id in stale:
        store.delete_by_product(TEXT_COLLECTION, product_id)
    outcome.removed = len(stale)
    return outcome
