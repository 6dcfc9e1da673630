from __future__ import annotations

import pytest

from catalog import services
from catalog.models import IndexStatus, ProductImage
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog_with_images(media_root):
    lamp = services.product_create(sku="LAMP-1", title="Brass lamp", category="lighting", price="49")
    services.product_image_add(product=lamp, data=image_bytes(color=(200, 160, 40)))
    sofa = services.product_create(sku="SOFA-1", title="Green sofa", category="furniture", in_stock=False)
    image = services.product_image_add(product=sofa, data=image_bytes(color=(20, 140, 40))).image
    ProductImage.objects.filter(pk=image.pk).update(index_status=IndexStatus.FAILED)
    return lamp, sofa


def test_admin_needs_staff_login(client) -> None:
    response = client.get("/admin/catalog/product/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_product_list_shows_thumbnails_and_filters(client, staff_user, catalog_with_images) -> None:
    client.force_login(staff_user)
    page = client.get("/admin/catalog/product/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "LAMP-1" in html and "SOFA-1" in html
    assert html.count('src="/media/images/') >= 2
    filtered = client.get("/admin/catalog/product/?index_status=failed").content.decode()
    assert "SOFA-1" in filtered and "LAMP-1" not in filtered
    assert "LAMP-1" not in client.get("/admin/catalog/product/?in_stock__exact=0").content.decode()
    assert "SOFA-1" not in client.get("/admin/catalog/product/?q=brass").content.decode()


def test_change_page_shows_images_inline(client, staff_user, catalog_with_images) -> None:
    lamp, _ = catalog_with_images
    client.force_login(staff_user)
    page = client.get(f"/admin/catalog/product/{lamp.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="/media/images/' in html and "Pending" in html


def test_reindex_action(client, staff_user, catalog_with_images, django_capture_on_commit_callbacks) -> None:
    _, sofa = catalog_with_images
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/admin/catalog/product/",
            {"action": "reindex_selected", "_selected_action": [sofa.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "Queued 1 image(s) for indexing." in response.content.decode()
    assert sofa.images.get().index_status == IndexStatus.PENDING
    assert len(callbacks) == 1


def test_admin_edit_goes_through_the_service(client, staff_user, catalog_with_images) -> None:
    lamp, _ = catalog_with_images
    client.force_login(staff_user)
    image = lamp.images.get()
    data = {
        "sku": "LAMP-1",
        "title": "Brass lamp",
        "description": "",
        "category": "lighting",
        "brand": "",
        "price": "59.00",
        "currency": "EUR",
        "in_stock": "on",
        "attributes": "{}",
        "images-TOTAL_FORMS": "1",
        "images-INITIAL_FORMS": "1",
        "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1000",
        "images-0-id": str(image.pk),
        "images-0-product": str(lamp.pk),
        "images-0-display_order": "0",
    }
    response = client.post(f"/admin/catalog/product/{lamp.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    lamp.refresh_from_db()
    assert str(lamp.price) == "59.00"
