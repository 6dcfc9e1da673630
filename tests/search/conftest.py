"""Search suite fixtures; the model, store and broker fixtures live in tests/support/model_fixtures.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def indexed_catalog(active_model, django_capture_on_commit_callbacks):
    """Three products with visibly different photos, indexed through the real on-commit task path."""
    from catalog import services
    from tests.fixtures.images import image_bytes

    specs = [
        ("RED-1", "Red mug", "kitchen", "5.00", True, (220, 20, 20), 1),
        ("GRN-1", "Green lamp", "lighting", "40.00", True, (20, 200, 40), 2),
        ("BLU-1", "Blue vase", "kitchen", "15.00", False, (20, 40, 220), 3),
    ]
    products, photos = {}, {}
    with django_capture_on_commit_callbacks(execute=True):
        for sku, title, category, price, stock, colour, pattern in specs:
            product = services.product_create(
                sku=sku, title=title, category=category, price=price, in_stock=stock
            )
            data = image_bytes(color=colour, size=(64, 64), pattern=pattern)
            services.product_image_add(product=product, data=data)
            products[sku], photos[sku] = product, data
    return products, photos
