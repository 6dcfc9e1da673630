"""Keeping stored points in step with catalog changes that need no embedding: a product's edited
facts go into its points' payloads, and a deleted image's points leave every collection."""

from __future__ import annotations

from collections.abc import Iterable

from catalog.models import Product, ProductImage
from search import selectors
from search.payloads import product_facts
from search.vector_store import vector_store


def sync_product_payload(product_id: int) -> None:
    """Copy the product's current facts into its points in every kept collection (or drop its points
    if the product is gone)."""
    store = vector_store()
    product = Product.objects.filter(pk=product_id).first()
    for model in selectors.models_with_collections():
        if not store.collection_exists(model.collection):
            continue
        if product is None:
            store.delete_by_product(model.collection, product_id)
        else:
            store.set_payload_by_product(model.collection, product_id, product_facts(product))


def remove_image_points(image_ids: Iterable[str]) -> int:
    """Delete the points of images that no longer exist, from every kept collection; returns how many."""
    ids = [str(i) for i in image_ids]
    # Rows that still exist (a replayed task after a re-upload) keep their points.
    live = {str(pk) for pk in ProductImage.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    gone = [i for i in ids if i not in live]
    if not gone:
        return 0
    store = vector_store()
    for model in selectors.models_with_collections():
        if store.collection_exists(model.collection):
            store.delete(model.collection, gone)
    return len(gone)
