"""Possible duplicates: a product whose image is nearly identical to another product's gets flagged
for the catalog editor (Product.possible_duplicate_of, shown in the admin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

from catalog import selectors as catalog_selectors
from catalog.services import index_state
from search.models import ModelVersion
from search.vector_store import SearchFilter, vector_store

if TYPE_CHECKING:
    from catalog.models import ProductImage


def flag_duplicates(images: list[ProductImage], model: ModelVersion, vectors: dict[str, np.ndarray]) -> int:
    """Mark a product "possible duplicate of" another whose image scores at least
    DUPLICATE_SCORE_THRESHOLD against one of its own.

    ``vectors`` are the images' embeddings just computed by ``model`` (no read-back from the store).
    One extra nearest-neighbour query per newly indexed image (a few ms with exact search at 10k points; through the graph on a large collection).
    """
    threshold = settings.DUPLICATE_SCORE_THRESHOLD
    store = vector_store()
    # Pairs an editor dismissed are left out of the query: never flagged again, yet a third product
    # that looks the same still is.
    dismissed = catalog_selectors.dismissed_duplicate_partners(product_ids={i.product_id for i in images})
    flagged = 0
    for image in images:
        vector = vectors.get(str(image.pk))
        if vector is None:
            continue
        hits = store.search(
            model.collection,
            vector,
            1,
            SearchFilter(exclude_product_ids=[image.product_id, *dismissed[image.product_id]]),
            group_by_product=True,
            beam=model.search_beam,
        )
        if not hits or hits[0].score < threshold:
            continue
        hit = hits[0]
        flagged += index_state.product_flag_duplicate(
            product_id=image.product_id, duplicate_of_id=hit.product_id, score=hit.score
        )
    return flagged
