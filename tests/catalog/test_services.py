from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.storage import default_storage

from catalog import events, services
from catalog.models import IndexStatus, Product, ProductImage
from ml.preprocess import ImageRejected
from tests.fixtures.images import image_bytes
from tests.support.recorders import announcements

pytestmark = pytest.mark.django_db


def test_product_create_cleans_fields() -> None:
    product = services.product_create(sku=" A-1 ", title=" Oat milk ", price="1.5", currency="sek")
    assert product.sku == "A-1"
    assert product.title == "Oat milk"
    assert product.price == Decimal("1.50")
    assert product.currency == "SEK"


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"price": "abc"}, "invalid_parameter", "price"),
        ({"price": "-1"}, "invalid_parameter", "price"),
        ({"currency": "EURO"}, "invalid_parameter", "currency"),
        ({"attributes": [1, 2]}, "invalid_parameter", "attributes"),
        ({"colour": "red"}, "invalid_parameter", None),
    ],
)
def test_product_create_rejects_bad_fields(fields, code, field) -> None:
    with pytest.raises(services.CatalogError) as info:
        services.product_create(sku="X", title="x", **fields)
    assert info.value.code == code and info.value.field == field
    assert not Product.objects.exists()


def test_duplicate_sku() -> None:
    services.product_create(sku="X", title="x")
    with pytest.raises(services.CatalogError) as info:
        services.product_create(sku="X", title="y")
    assert info.value.code == "duplicate_sku"


def test_image_add_is_content_addressed_and_idempotent(
    media_root, django_capture_on_commit_callbacks
) -> None:
    product = services.product_create(sku="X", title="x")
    data = image_bytes(size=(30, 20))
    with django_capture_on_commit_callbacks() as callbacks:
        first = services.product_image_add(product=product, data=data, original_name="a.jpg")
    again = services.product_image_add(product=product, data=data, original_name="b.jpg")
    assert first.created and not again.created
    assert again.image.pk == first.image.pk
    image = first.image
    assert image.file.name.startswith(f"images/{image.sha256[:2]}/{image.sha256[2:4]}/{image.sha256}")
    assert (image.width, image.height, image.format) == (30, 20, "JPEG")
    assert image.index_status == IndexStatus.PENDING
    assert default_storage.exists(image.file.name)
    assert len(callbacks) == 1  # indexing enqueued once, after commit


def test_display_order_follows_the_existing_images(media_root) -> None:
    product = services.product_create(sku="X", title="x")
    a = services.product_image_add(product=product, data=image_bytes(pattern=1)).image
    b = services.product_image_add(product=product, data=image_bytes(pattern=2)).image
    assert (a.display_order, b.display_order) == (0, 1)


def test_bad_image_writes_nothing(media_root) -> None:
    product = services.product_create(sku="X", title="x")
    with pytest.raises(ImageRejected):
        services.product_image_add(product=product, data=b"not an image")
    assert not ProductImage.objects.exists()
    assert not (media_root / "images").exists() or not any((media_root / "images").rglob("*.*"))


def test_shared_file_is_kept_until_the_last_image_goes(
    media_root, django_capture_on_commit_callbacks
) -> None:
    data = image_bytes(pattern=3)
    a = services.product_image_add(product=services.product_create(sku="A", title="a"), data=data).image
    b = services.product_image_add(product=services.product_create(sku="B", title="b"), data=data).image
    assert a.file.name == b.file.name
    with django_capture_on_commit_callbacks(execute=True):
        services.product_image_delete(image=a)
    assert default_storage.exists(b.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        services.product_delete(product=b.product)
    assert not default_storage.exists(b.file.name)
    assert not ProductImage.objects.exists()


def test_update_announces_the_changed_fields_after_commit(
    media_root, django_capture_on_commit_callbacks
) -> None:
    product = services.product_create(sku="X", title="x", price="2")
    with announcements(events.product_changed) as seen:
        with django_capture_on_commit_callbacks(execute=True) as edit:
            services.product_update(product=product, title="renamed", price="3.00")
        assert len(edit) == 1 and seen == [
            {"product_id": product.pk, "fields": frozenset({"title", "price"})}
        ]
        with django_capture_on_commit_callbacks(execute=True) as no_change:
            services.product_update(product=product, price="3")
    assert no_change == [] and len(seen) == 1
    product.refresh_from_db()
    assert product.price == Decimal("3.00") and product.title == "renamed"


def test_rolled_back_transaction_enqueues_nothing(media_root, django_capture_on_commit_callbacks) -> None:
    from django.db import transaction

    product = services.product_create(sku="X", title="x")
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError), transaction.atomic():
        services.product_update(product=product, price="9")
        raise RuntimeError("boom")
    assert callbacks == []


def test_reindex_marks_images_pending(media_root) -> None:
    product = services.product_create(sku="X", title="x")
    image = services.product_image_add(product=product, data=image_bytes()).image
    ProductImage.objects.filter(pk=image.pk).update(index_status=IndexStatus.FAILED, last_error="boom")
    assert services.product_images_reindex(product_ids=[product.pk]) == 1
    image.refresh_from_db()
    assert image.index_status == IndexStatus.PENDING and image.last_error == ""


def test_orphan_files_left_by_an_outer_rollback_are_found_and_removed(media_root) -> None:
    import os

    from django.db import transaction

    from catalog.storage import orphan_files

    product = services.product_create(sku="X", title="x")
    with pytest.raises(RuntimeError), transaction.atomic():
        image = services.product_image_add(product=product, data=image_bytes(pattern=8)).image
        raise RuntimeError("the caller's transaction fails after the upload")
    assert not ProductImage.objects.exists()
    path = media_root / image.file.name
    # The service cannot see its caller's rollback (Django has no on-rollback hook), so the file stays
    # until the reconcile pass collects it.
    assert path.exists()
    assert orphan_files() == []  # too young: it might belong to an upload in flight
    old = path.stat().st_mtime - 7200
    os.utime(path, (old, old))
    assert orphan_files() == [image.file.name]
    assert orphan_files(remove=True) == [image.file.name]
    assert not path.exists()
    assert orphan_files() == []


@pytest.mark.parametrize(
    "link", ["ftp://shop.example/p", "javascript:alert(1)", "/relative/path", "x" * 2001]
)
def test_a_shop_link_must_be_an_http_url(link) -> None:
    with pytest.raises(services.CatalogError) as info:
        services.product_create(sku="L", title="l", link=link)
    assert info.value.field == "link"


def test_a_shop_link_is_kept_and_shown_in_the_api(auth_client) -> None:
    product = services.product_create(sku="L", title="l", link=" https://shop.example/p/1 ")
    assert product.link == "https://shop.example/p/1"
    assert auth_client.get(f"/api/v1/products/{product.pk}/").json()["link"] == "https://shop.example/p/1"
