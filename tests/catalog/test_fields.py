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


def test_field_lengths_are_defined_once() -> None:
    """The column, the API's validation, the service's check and the feed parsers' cuts agree, because
    they all read catalog.field_limits."""
    from catalog import field_limits
    from catalog.feeds.text import clip

    limits = {
        "sku": field_limits.SKU_MAX,
        "title": field_limits.TITLE_MAX,
        "category": field_limits.CATEGORY_MAX,
        "brand": field_limits.BRAND_MAX,
        "currency": field_limits.CURRENCY_LEN,
        "link": field_limits.URL_MAX,
    }
    serializer = ProductInput().fields
    for name, limit in limits.items():
        assert Product._meta.get_field(name).max_length == limit, name
        if name != "currency":  # the API checks a currency by its pattern
            assert serializer[name].max_length == limit, name
    assert len(clip("x" * 1000, field_limits.SKU_MAX)) <= field_limits.SKU_MAX


def test_the_service_refuses_values_longer_than_their_column() -> None:
    """A category or brand longer than its column is a 4xx from the service, not a DataError from the
    database at the write."""
    import pytest

    from catalog import field_limits
    from catalog.errors import CatalogError

    for name, limit in (("category", field_limits.CATEGORY_MAX), ("brand", field_limits.BRAND_MAX)):
        assert clean_fields({name: "x" * limit})[name] == "x" * limit
        with pytest.raises(CatalogError) as info:
            clean_fields({name: "x" * (limit + 1)})
        assert (info.value.code, info.value.field) == ("invalid_parameter", name)
    with pytest.raises(CatalogError):
        clean_fields({"sku": "x" * (field_limits.SKU_MAX + 1)})
