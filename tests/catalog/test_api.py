from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog import services
from catalog.models import Product, ProductImage
from tests.fixtures.images import image_bytes, png_header_with_size, truncated_jpeg

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]


def test_writes_need_a_token(api_client) -> None:
    response = api_client.post("/api/v1/products/", {"sku": "A", "title": "a"}, format="json")
    assert response.status_code == 401
    assert _error(response)["code"] == "not_authenticated"
    assert not Product.objects.exists()


def test_bad_token_is_refused(api_client) -> None:
    api_client.credentials(HTTP_AUTHORIZATION="Token nope")
    response = api_client.post("/api/v1/products/", {"sku": "A", "title": "a"}, format="json")
    assert response.status_code == 401


def test_create_list_retrieve_update_delete(auth_client, api_client, media_root) -> None:
    created = auth_client.post(
        "/api/v1/products/",
        {
            "sku": "A-1",
            "title": "Lamp",
            "category": "lighting",
            "price": "19.90",
            "attributes": {"colour": "red"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    product_id = created.json()["id"]
    assert created.json()["price"] == 19.9

    listed = api_client.get("/api/v1/products/?category=lighting")
    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert api_client.get("/api/v1/products/?category=other").json()["count"] == 0

    patched = auth_client.patch(f"/api/v1/products/{product_id}/", {"in_stock": False}, format="json")
    assert patched.status_code == 200 and patched.json()["in_stock"] is False
    assert patched.json()["title"] == "Lamp"  # untouched fields stay

    assert auth_client.delete(f"/api/v1/products/{product_id}/").status_code == 204
    assert api_client.get(f"/api/v1/products/{product_id}/").status_code == 404


def test_validation_errors_name_the_field(auth_client) -> None:
    response = auth_client.post("/api/v1/products/", {"sku": "", "title": "x", "price": "abc"}, format="json")
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_parameter"
    assert {"sku", "price"} <= set(error["fields"])


def test_duplicate_sku_is_a_conflict(auth_client) -> None:
    services.product_create(sku="A", title="a")
    response = auth_client.post("/api/v1/products/", {"sku": "A", "title": "b"}, format="json")
    assert response.status_code == 409
    assert _error(response)["code"] == "duplicate_sku"


def test_unknown_product_is_404(api_client) -> None:
    response = api_client.get("/api/v1/products/999999/")
    assert response.status_code == 404
    assert _error(response)["code"] == "product_not_found"


def test_multipart_upload_and_delete(auth_client, api_client, media_root) -> None:
    product = services.product_create(sku="A", title="a")
    upload = SimpleUploadedFile("photo.png", image_bytes(fmt="PNG", size=(40, 30)), content_type="image/png")
    response = auth_client.post(
        f"/api/v1/products/{product.pk}/images/", {"image": upload}, format="multipart"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["width"], body["height"], body["format"]) == (40, 30, "PNG")
    assert body["index_status"] == "pending"
    assert body["url"].startswith("http://testserver/media/images/")

    listed = api_client.get(f"/api/v1/products/{product.pk}/images/")
    assert [i["id"] for i in listed.json()] == [body["id"]]

    assert auth_client.delete(f"/api/v1/images/{body['id']}/").status_code == 204
    assert not ProductImage.objects.exists()


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("broken.jpg", truncated_jpeg(), 400, "invalid_image"),
        ("notes.jpg", b"hello, I am text", 400, "invalid_image"),
        ("bomb.png", png_header_with_size(20000, 20000), 400, "invalid_image"),
        ("empty.jpg", b"", 400, "invalid_image"),
    ],
)
def test_bad_uploads_get_a_4xx_and_leave_nothing(auth_client, media_root, name, data, status, code) -> None:
    product = services.product_create(sku="A", title="a")
    upload = SimpleUploadedFile(name, data, content_type="image/jpeg")
    response = auth_client.post(
        f"/api/v1/products/{product.pk}/images/", {"image": upload}, format="multipart"
    )
    assert response.status_code == status, response.content
    assert _error(response)["code"] == code
    assert not ProductImage.objects.exists()
    assert not (media_root / "images").exists() or not any(
        p.is_file() for p in (media_root / "images").rglob("*")
    )


def test_upload_over_the_cap_is_413(auth_client, media_root, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 500
    product = services.product_create(sku="A", title="a")
    upload = SimpleUploadedFile(
        "big.jpg", image_bytes(size=(200, 200), quality=100), content_type="image/jpeg"
    )
    response = auth_client.post(
        f"/api/v1/products/{product.pk}/images/", {"image": upload}, format="multipart"
    )
    assert response.status_code == 413
    assert _error(response)["code"] == "image_too_large"


def test_missing_file_field(auth_client) -> None:
    product = services.product_create(sku="A", title="a")
    response = auth_client.post(f"/api/v1/products/{product.pk}/images/", {}, format="multipart")
    assert response.status_code == 400
    assert "image" in _error(response)["fields"]


def test_openapi_schema_and_docs(api_client) -> None:
    schema = api_client.get("/api/v1/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/products/" in paths and "/api/v1/products/{product_id}/images/" in paths
    assert api_client.get("/api/v1/docs/").status_code == 200
