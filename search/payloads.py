"""The facts stored with each image's vector (``PointPayload``, defined by the vector-store gateway),
built from the catalog here and nowhere else: indexing, payload sync and reconciliation all use it.

Filters and grouping read the payload; what a result shows comes from the catalog (see the search
service), so only the fields filters need are copied into the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from catalog.models import Product
from search.vector_store import PointPayload

# The product fields a payload copies: every PointPayload field that is also a product field (the
# editable ones, and ``active``, which only the catalog sync changes).
_PRODUCT_COLUMNS = frozenset(f.name for f in Product._meta.concrete_fields)
PRODUCT_FIELDS = tuple(f.name for f in dataclasses.fields(PointPayload) if f.name in _PRODUCT_COLUMNS)


def point_payload(product: Product, model_version: int | str) -> PointPayload:
    return PointPayload(
        product_id=product.pk,
        sku=product.sku,
        category=product.category,
        price=float(product.price) if product.price is not None else None,
        in_stock=product.in_stock,
        active=product.active,
        model_version=str(model_version),
    )


def product_facts(product: Product) -> dict[str, Any]:
    """The payload keys that come from the product (for a patch, or to compare with what is stored)."""
    data = point_payload(product, "").to_dict()
    return {key: data[key] for key in ("product_id", *PRODUCT_FIELDS)}


def affects_payload(changed_fields: Iterable[str]) -> bool:
    """Whether a product edit touching ``changed_fields`` makes its stored payloads stale."""
    return not set(PRODUCT_FIELDS).isdisjoint(changed_fields)
