"""Adding and replacing a product's photo on the admin's product page: checked like an API upload (a
refusal is a form error with the API's own message, and nothing is saved), indexed after commit by the
real model, and a replacement takes the old photo's place."""

from __future__ import annotations

from html import escape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog import services
from catalog.errors import CatalogError
from catalog.models import IndexStatus, Product, ProductImage
from catalog.storage import read_image
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes, truncated_jpeg

pytestmark = pytest.mark.django_db


def _url(product: Product) -> str:
    return f"/admin/catalog/product/{product.pk}/change/"


def _form(product: Product, **extra) -> dict:
    """The change form as the browser posts it: the product's fields and one inline row per image."""
    images = list(product.images.order_by("display_order", "created_at"))
    data = {
        "sku": product.sku,
        "title": product.title,
        "description": product.description,
        "category": product.category,
        "brand": product.brand,
        "price": "" if product.price is None else str(product.price),
        "currency": product.currency,
        "attributes": "{}",
        "link": product.link,
        "images-TOTAL_FORMS": str(len(images)),
        "images-INITIAL_FORMS": str(len(images)),
        "images-MIN_NUM_FORMS": "0",
        "images-MAX_NUM_FORMS": "1000",
    }
    if product.in_stock:
        data["in_stock"] = "on"
    for n, image in enumerate(images):
        data[f"images-{n}-id"] = str(image.pk)
        data[f"images-{n}-product"] = str(product.pk)
        data[f"images-{n}-display_order"] = str(image.display_order)
    data.update(extra)
    return data


def _file(data: bytes, name: str = "photo.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.fixture
def editor(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def lamp(active_model, django_capture_on_commit_callbacks) -> Product:
    """A product with two indexed photos (display order 0 and 1)."""
    product = services.product_create(sku="LAMP-1", title="Brass lamp", price="49")
    with django_capture_on_commit_callbacks(execute=True):
        services.product_image_add(product=product, data=image_bytes(color=(200, 160, 40), pattern=1))
        services.product_image_add(product=product, data=image_bytes(color=(40, 60, 200), pattern=2))
    assert set(product.images.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}
    return product


def _indexed_ids(model) -> set[str]:
    ids = [str(pk) for pk in ProductImage.objects.values_list("pk", flat=True)]
    return set(vector_store().retrieve(model.collection, ids))


def test_the_product_page_takes_files(editor, lamp) -> None:
    html = editor.get(_url(lamp)).content.decode()
    assert 'enctype="multipart/form-data"' in html
    assert 'name="add_photo"' in html and 'name="images-0-replace_with"' in html


def test_an_added_photo_is_stored_and_indexed_on_commit(
    editor, lamp, active_model, django_capture_on_commit_callbacks
) -> None:
    photo = image_bytes(color=(20, 200, 90), pattern=3)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = editor.post(_url(lamp), _form(lamp, add_photo=_file(photo, "green.jpg")))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert callbacks, "indexing is announced after commit"
    added = lamp.images.get(original_name="green.jpg")
    assert read_image(added.file.name) == photo
    assert added.display_order == 2  # after the two there
    assert added.index_status == IndexStatus.INDEXED
    assert added.indexed_model_version == str(active_model.version)
    assert str(added.pk) in _indexed_ids(active_model)


@pytest.mark.parametrize(
    ("bad", "max_bytes"),
    [(truncated_jpeg(), None), (b"not an image at all", None), (image_bytes(size=(200, 200)), 500)],
    ids=["truncated", "not-an-image", "too-large"],
)
def test_a_refused_photo_is_a_form_error_worded_like_the_api_and_nothing_is_saved(
    editor, auth_client, lamp, settings, media_root, bad, max_bytes
) -> None:
    if max_bytes:
        settings.MAX_UPLOAD_BYTES = max_bytes
    api = auth_client.post(f"/api/v1/products/{lamp.pk}/images/", {"image": _file(bad)}, format="multipart")
    assert api.status_code in (400, 413), api.content
    api_message = api.json()["error"]["message"]
    files_before = sorted(p.name for p in media_root.rglob("*") if p.is_file())
    rows_before = set(ProductImage.objects.values_list("pk", flat=True))

    first = lamp.images.order_by("display_order").first()
    for field in ("add_photo", "images-0-replace_with"):
        response = editor.post(
            _url(lamp), _form(lamp, title="Renamed in the same save", **{field: _file(bad)})
        )
        assert response.status_code == 200, f"{field}: the form must come back with its error"
        assert escape(api_message) in response.content.decode(), f"{field}: {api_message!r} not shown"

    lamp.refresh_from_db()
    assert lamp.title == "Brass lamp", "the product's other fields are not saved either"
    assert set(ProductImage.objects.values_list("pk", flat=True)) == rows_before
    assert lamp.images.order_by("display_order").first() == first
    assert sorted(p.name for p in media_root.rglob("*") if p.is_file()) == files_before


def test_a_replaced_photo_takes_the_old_ones_place(
    editor, lamp, active_model, media_root, django_capture_on_commit_callbacks
) -> None:
    old, kept = list(lamp.images.order_by("display_order"))
    old_file = media_root / old.file.name
    assert old_file.is_file()
    photo = image_bytes(color=(230, 230, 230), pattern=9)
    with django_capture_on_commit_callbacks(execute=True):
        response = editor.post(
            _url(lamp), _form(lamp, **{"images-0-replace_with": _file(photo, "white.jpg")})
        )
    assert response.status_code == 302, response.content.decode()[:3000]

    images = list(lamp.images.order_by("display_order"))
    assert len(images) == 2 and images[1].pk == kept.pk
    new = images[0]
    assert new.pk != old.pk and new.display_order == old.display_order == 0
    assert read_image(new.file.name) == photo and new.original_name == "white.jpg"
    assert new.index_status == IndexStatus.INDEXED
    assert not ProductImage.objects.filter(pk=old.pk).exists()
    assert not old_file.exists(), "the old file is released once no row needs it"
    assert _indexed_ids(active_model) == {str(new.pk), str(kept.pk)}, "the old vector is gone, the new one in"


def test_replacing_with_a_photo_the_product_already_has_is_refused(editor, lamp) -> None:
    first, second = list(lamp.images.order_by("display_order"))
    response = editor.post(
        _url(lamp), _form(lamp, **{"images-0-replace_with": _file(read_image(second.file.name))})
    )
    assert response.status_code == 200
    assert "This product already has this photo." in response.content.decode()
    assert list(lamp.images.order_by("display_order")) == [first, second]


def test_replace_service_is_one_transaction(lamp, monkeypatch, django_capture_on_commit_callbacks) -> None:
    from catalog.services import images as image_services

    old = lamp.images.order_by("display_order").first()
    assert services.product_image_replace(image=old, data=read_image(old.file.name)).created is False

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(image_services, "write_image", disk_full)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(OSError):
        services.product_image_replace(image=old, data=image_bytes(pattern=33))
    assert ProductImage.objects.filter(pk=old.pk).exists(), "the old photo stays when the new one fails"
    assert callbacks == [], "nothing announced: no vector removed"

    other = lamp.images.order_by("display_order").last()
    with pytest.raises(CatalogError) as refused:
        services.product_image_replace(image=old, data=read_image(other.file.name))
    assert refused.value.code == "duplicate_image"
