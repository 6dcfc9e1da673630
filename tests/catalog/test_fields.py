"""Product fields are defined once, on the model; every reader and writer follows that list."""

from __future__ import annotations

from catalog.api.serializers import ProductInput, ProductOutput
from catalog.feeds.manifest import MANIFEST_FIELDS
from catalog.models import Product
from catalog.services.products import clean_fields


def test_api_and_import_take_the_models_editable_fields() -> None:
    assert tuple(ProductInput().fields) == Product.EDITABLE_FIELDS
    assert set(Product.EDITABLE_FIELDS) <= set(ProductOutput().fields)
    assert {*Product.EDITABLE_FIELDS, "images"} == MANIFEST_FIELDS


def test_the_service_refuses_anything_else() -> None:
    import pytest

    from catalog.errors import CatalogError

    with pytest.raises(CatalogError) as info:
        clean_fields({"colour": "red"})
    assert info.value.code == "invalid_parameter"
    assert set(clean_fields({f: None for f in ("description", "category", "brand")})) == {
        "description",
        "category",
        "brand",
    }
