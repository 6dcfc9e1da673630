from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog import services
from catalog.models import IndexStatus, Product, ProductImage
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes, png_header_with_size, truncated_jpeg

pytestmark = pytest.mark.django_db


def _photo(data: bytes, name: str = "q.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def _search(client, **params):
    fmt = "multipart" if "image" in params else "json"
    return client.post("/api/v1/search/", params, format=fmt)


def _skus(response) -> list[str]:
    return [r["product"]["sku"] for r in response.json()["results"]]


def test_every_image_is_indexed_with_its_payload(indexed_catalog, active_model) -> None:
    products, _ = indexed_catalog
    images = list(ProductImage.objects.all())
    assert {i.index_status for i in images} == {IndexStatus.INDEXED}
    assert {i.indexed_model_version for i in images} == {str(active_model.version)}
    stored = vector_store().retrieve(active_model.collection, [str(i.pk) for i in images])
    assert len(stored) == 3
    payload = stored[str(products["RED-1"].images.get().pk)][1]
    assert payload["sku"] == "RED-1" and payload["price"] == 5.0 and payload["category"] == "kitchen"


def test_a_photo_finds_its_product_first(api_client, indexed_catalog, active_model) -> None:
    _, photos = indexed_catalog
    response = _search(api_client, image=_photo(photos["GRN-1"]), limit=3)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == active_model.version
    assert set(body["timings_ms"]) >= {"decode", "embed", "search", "total"}
    assert _skus(response)[0] == "GRN-1"
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    product = body["results"][0]["product"]
    assert product["url"] == f"http://testserver/products/{product['id']}/"
    stored = ProductImage.objects.select_related("product").get(pk=body["results"][0]["image_id"])
    assert product["image_url"] == f"http://testserver{stored.file.url}"
    row = stored.product
    assert product == {
        "id": row.pk,
        "sku": row.sku,
        "title": row.title,
        "category": row.category,
        "price": float(row.price) if row.price is not None else None,
        "currency": row.currency,
        "in_stock": row.in_stock,
        "link": None,  # no shop page known for this product
        "url": product["url"],
        "image_url": product["image_url"],
    }


def test_results_show_the_catalog_as_it_is_now(api_client, indexed_catalog) -> None:
    # The index's payload may lag a moment behind an edit; what a result shows is read from the catalog.
    products, photos = indexed_catalog
    Product.objects.filter(pk=products["GRN-1"].pk).update(title="Renamed just now")  # no payload sync
    hit = _search(api_client, image=_photo(photos["GRN-1"]), limit=1).json()["results"][0]
    assert hit["product"]["title"] == "Renamed just now"


def test_one_result_per_product(api_client, indexed_catalog, django_capture_on_commit_callbacks) -> None:
    products, photos = indexed_catalog
    with django_capture_on_commit_callbacks(execute=True):
        services.product_image_add(
            product=products["RED-1"], data=image_bytes(color=(210, 30, 30), pattern=9)
        )
    response = _search(api_client, image=_photo(photos["RED-1"]), limit=10)
    assert sorted(_skus(response)) == ["BLU-1", "GRN-1", "RED-1"]


def test_filters(api_client, indexed_catalog) -> None:
    _, photos = indexed_catalog
    q = photos["RED-1"]
    assert sorted(_skus(_search(api_client, image=_photo(q), category="kitchen"))) == ["BLU-1", "RED-1"]
    assert sorted(_skus(_search(api_client, image=_photo(q), category="kitchen,lighting"))) == [
        "BLU-1",
        "GRN-1",
        "RED-1",
    ]
    assert _skus(_search(api_client, image=_photo(q), min_price="10", max_price="20")) == ["BLU-1"]
    assert sorted(_skus(_search(api_client, image=_photo(q), in_stock="true"))) == ["GRN-1", "RED-1"]


def test_more_like_this_product_and_image_exclude_the_query_product(api_client, indexed_catalog) -> None:
    products, _ = indexed_catalog
    by_product = _search(api_client, product_id=products["RED-1"].pk)
    assert by_product.status_code == 200
    assert "RED-1" not in _skus(by_product) and len(_skus(by_product)) == 2
    image_id = str(products["GRN-1"].images.get().pk)
    by_image = _search(api_client, image_id=image_id)
    assert by_image.status_code == 200
    assert "GRN-1" not in _skus(by_image) and len(_skus(by_image)) == 2


def test_changes_reach_the_index(api_client, indexed_catalog, django_capture_on_commit_callbacks) -> None:
    products, photos = indexed_catalog
    with django_capture_on_commit_callbacks(execute=True):
        services.product_update(product=products["BLU-1"], price="99.00", in_stock=True)
    assert _skus(_search(api_client, image=_photo(photos["RED-1"]), min_price="90")) == ["BLU-1"]
    with django_capture_on_commit_callbacks(execute=True):
        services.product_image_delete(image=products["GRN-1"].images.get())
    assert "GRN-1" not in _skus(_search(api_client, image=_photo(photos["GRN-1"])))
    with django_capture_on_commit_callbacks(execute=True):
        services.product_delete(product=products["RED-1"])
    assert _skus(_search(api_client, image=_photo(photos["RED-1"]))) == ["BLU-1"]


def test_crop_searches_part_of_the_photo(api_client, indexed_catalog) -> None:
    _, photos = indexed_catalog
    import io

    from PIL import Image

    # A wide photo: the green product's photo on the right half, noise on the left.
    left = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    right = Image.open(io.BytesIO(photos["GRN-1"]))
    room = Image.new("RGB", (128, 64))
    room.paste(left, (0, 0))
    room.paste(right, (64, 0))
    buf = io.BytesIO()
    room.save(buf, "PNG")
    response = _search(api_client, image=_photo(buf.getvalue(), "room.png"), crop="64,0,64,64")
    assert response.status_code == 200
    assert _skus(response)[0] == "GRN-1"
    assert response.json()["results"][0]["score"] > 0.99


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "query"),
        ({"product_id": 1, "image_id": "6f1c1e7e-2f0a-4d5e-9a53-1f2d3c4b5a69"}, "query"),
        ({"product_id": 1, "limit": 0}, "limit"),
        ({"product_id": 1, "limit": 101}, "limit"),
        ({"product_id": "abc"}, "product_id"),
        ({"image_id": "not-a-uuid"}, "image_id"),
        ({"product_id": 1, "min_price": "5", "max_price": "1"}, "min_price"),
        ({"product_id": 1, "crop": "0,0,5,5"}, "crop"),
    ],
)
def test_bad_parameters(api_client, active_model, params, field) -> None:
    error = _error(_search(api_client, **params), 400, "invalid_parameter")
    assert field in error["fields"]


def test_bad_crop_string(api_client, active_model) -> None:
    error = _error(_search(api_client, image=_photo(image_bytes()), crop="1,2"), 400, "invalid_parameter")
    assert "crop" in error["fields"]


@pytest.mark.parametrize("data", [truncated_jpeg(), b"<svg/>", b"", png_header_with_size(30000, 30000)])
def test_bad_images(api_client, active_model, data) -> None:
    _error(_search(api_client, image=_photo(data)), 400, "invalid_image")


def test_oversized_image(api_client, active_model, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 300
    _error(
        _search(api_client, image=_photo(image_bytes(size=(128, 128), quality=100))), 413, "image_too_large"
    )


def test_unknown_product_and_image(api_client, active_model) -> None:
    _error(_search(api_client, product_id=999999), 404, "product_not_found")
    _error(_search(api_client, product_id=2**70), 404, "product_not_found")  # past any bigint
    _error(_search(api_client, image_id="6f1c1e7e-2f0a-4d5e-9a53-1f2d3c4b5a69"), 404, "image_not_found")


def test_product_without_images_is_not_indexed(api_client, active_model) -> None:
    product = services.product_create(sku="BARE", title="no photos yet")
    _error(_search(api_client, product_id=product.pk), 409, "not_indexed")


def test_not_indexed_yet(api_client, active_model) -> None:
    product = services.product_create(sku="NEW", title="new")
    image = services.product_image_add(
        product=product, data=image_bytes()
    ).image  # not committed: no task ran
    _error(_search(api_client, product_id=product.pk), 409, "not_indexed")
    _error(_search(api_client, image_id=str(image.pk)), 409, "not_indexed")


def test_no_model_is_503(api_client, db, vector_store_path) -> None:
    _error(_search(api_client, image=_photo(image_bytes())), 503, "model_unavailable")


def test_model_server_down_is_503(api_client, active_model, settings) -> None:
    from search import vector_store as store_handle
    from search.embedders import reset_embedders
    from tests.support.serving_fixtures import free_port

    settings.TF_SERVING_TARGET = f"127.0.0.1:{free_port()}"
    settings.TF_SERVING_TIMEOUT_S = 0.5
    store_handle.reset_vector_store()
    reset_embedders()
    try:
        _error(_search(api_client, image=_photo(image_bytes())), 503, "model_unavailable")
    finally:
        settings.TF_SERVING_TARGET = None
        store_handle.reset_vector_store()
        reset_embedders()


def test_index_down_is_503(api_client, active_model, settings) -> None:
    from search import vector_store as store_handle
    from tests.support.serving_fixtures import free_port

    settings.QDRANT_URL = f"http://127.0.0.1:{free_port()}"
    store_handle.reset_vector_store()
    try:
        _error(_search(api_client, image=_photo(image_bytes())), 503, "index_unavailable")
    finally:
        settings.QDRANT_URL = None
        store_handle.reset_vector_store()


def test_anonymous_search_is_throttled(api_client, indexed_catalog, staff_user, monkeypatch) -> None:
    from search.api.throttling import SearchThrottle

    rates = {**SearchThrottle.THROTTLE_RATES, "search_anon": "2/min", "search_user": "4/min"}
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", rates)
    products, _ = indexed_catalog
    pid = products["RED-1"].pk
    anonymous = [_search(api_client, product_id=pid).status_code for _ in range(3)]
    # A forged X-Forwarded-For is no new client (no proxy is trusted here: TRUSTED_PROXIES=0).
    forged = api_client.post(
        "/api/v1/search/", {"product_id": pid}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    # A signed-in user has a bucket and a rate of their own, not the address's anonymous one.
    api_client.force_authenticate(user=staff_user)
    signed_in = [_search(api_client, product_id=pid).status_code for _ in range(5)]
    api_client.force_authenticate(user=None)
    again_anonymous = _search(api_client, product_id=pid)
    assert anonymous == [200, 200, 429]
    assert forged.status_code == 429
    assert signed_in == [200, 200, 200, 200, 429]
    _error(again_anonymous, 429, "throttled")
    assert int(again_anonymous["Retry-After"]) > 0


def test_schema_documents_search(api_client) -> None:
    schema = api_client.get("/api/v1/schema/?format=json").json()
    op = schema["paths"]["/api/v1/search/"]["post"]
    assert {"200", "400", "404", "409", "413", "429", "503"} <= set(op["responses"])


def test_pages(client, indexed_catalog) -> None:
    products, _ = indexed_catalog
    home = client.get("/")
    assert home.status_code == 200 and b'id="drop"' in home.content and b"kitchen" in home.content
    page = client.get(f"/products/{products['RED-1'].pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Red mug" in html and "Green lamp" in html and "Blue vase" in html  # similar products listed
    assert client.get("/products/999999/").status_code == 404


def test_readiness(client, indexed_catalog, settings) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_signed_in_editor_can_search_from_the_page(indexed_catalog, staff_user) -> None:
    """A session (an editor signed in to the admin) makes DRF check CSRF: the page hands the token over."""
    import re

    from django.test import Client

    _, photos = indexed_catalog
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    page = browser.get("/").content.decode()
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    refused = browser.post("/api/v1/search/", {"image": _photo(photos["RED-1"])})
    assert refused.status_code == 403
    allowed = browser.post("/api/v1/search/", {"image": _photo(photos["RED-1"])}, HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 200
    assert _skus(allowed)[0] == "RED-1"


@pytest.mark.parametrize("media_url", ["/media/", "https://cdn.example.com/shop/media/"])
def test_image_urls_match_the_storage(settings, media_url) -> None:
    from django.core.files.storage import FileSystemStorage

    from search.api.links import media_url_function

    settings.MEDIA_URL = media_url
    name = "images/ab/cd/abcdef 1+é.jpg"  # a space, a plus and a non-ASCII letter need quoting
    assert media_url_function()(name) == FileSystemStorage().url(name)


@pytest.mark.parametrize(
    "path",
    [
        "/products/7/",
        "/media/images/a%20b.jpg",
        "https://cdn.example.com/m/x.jpg",
        "//cdn.example.com/m/x.jpg",
    ],
)
def test_absolute_urls_match_django(rf, path) -> None:
    from search.api.links import url_builder

    request = rf.get("/api/v1/search/", secure=True)
    assert url_builder(request)(path) == request.build_absolute_uri(path)
