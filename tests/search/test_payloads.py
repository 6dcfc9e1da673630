"""The stored payload is built from the catalog in one place."""

from __future__ import annotations

from decimal import Decimal

from catalog.models import Product
from search.payloads import PRODUCT_FIELDS, affects_payload, point_payload, product_facts


def test_the_payload_copies_exactly_the_fields_filters_need() -> None:
    assert set(PRODUCT_FIELDS) == {"sku", "category", "price", "in_stock", "active"}
    assert (
        affects_payload({"price"}) and affects_payload({"title", "in_stock"}) and affects_payload({"active"})
    )
    assert not affects_payload({"title", "description", "brand", "attributes"})


def test_payload_values_are_plain() -> None:
    product = Product(pk=5, sku="S", title="t", category="c", price=Decimal("2.50"), in_stock=False)
    assert point_payload(product, 3).to_dict() == {
        "product_id": 5,
        "sku": "S",
        "category": "c",
        "price": 2.5,
        "in_stock": False,
        "active": True,
        "model_version": "3",
    }
    assert product_facts(product) == {
        "product_id": 5,
        "sku": "S",
        "category": "c",
        "price": 2.5,
        "in_stock": False,
        "active": True,
    }
