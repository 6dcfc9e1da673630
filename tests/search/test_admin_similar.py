from __future__ import annotations

import pytest

from catalog import services

pytestmark = pytest.mark.django_db


def test_duplicate_is_flagged_and_listed(
    client, staff_user, indexed_catalog, django_capture_on_commit_callbacks
):
    products, photos = indexed_catalog
    with django_capture_on_commit_callbacks(execute=True):
        dup = services.product_create(sku="DUP-1", title="Same mug, other listing", category="kitchen")
        services.product_image_add(product=dup, data=photos["RED-1"])
    dup.refresh_from_db()
    assert dup.possible_duplicate_of_id == products["RED-1"].pk
    assert dup.duplicate_score == pytest.approx(1.0, abs=1e-4)
    products["GRN-1"].refresh_from_db()
    assert products["GRN-1"].possible_duplicate_of is None

    client.force_login(staff_user)
    listing = client.get("/admin/catalog/product/?possible_duplicate=yes").content.decode()
    assert "DUP-1" in listing and "GRN-1" not in listing
    page = client.get(f"/admin/catalog/product/{dup.pk}/change/").content.decode()
    assert "Possible duplicate of" in page and "RED-1" in page


def test_change_page_shows_similar_products(client, staff_user, indexed_catalog):
    products, _ = indexed_catalog
    client.force_login(staff_user)
    page = client.get(f"/admin/catalog/product/{products['RED-1'].pk}/change/").content.decode()
    assert "Visually similar products" in page
    assert page.count('class="similar-product"') == 2
    assert "GRN-1" in page and "BLU-1" in page


def test_change_page_without_a_model_still_renders(client, staff_user, media_root):
    product = services.product_create(sku="LONE", title="lone")
    client.force_login(staff_user)
    page = client.get(f"/admin/catalog/product/{product.pk}/change/")
    assert page.status_code == 200
    assert "not searchable" in page.content.decode() or "No model" in page.content.decode()
