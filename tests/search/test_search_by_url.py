"""Search by a photo's URL (fetched during the request through the fetcher's guard, from a loopback
server the test starts) or by its bytes in base64; and deactivated products leave results at once."""

from __future__ import annotations

import base64

import pytest

from catalog.services.activation import products_deactivate
from tests.fixtures.images import image_bytes
from tests.support.loopback import LoopbackServer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_only(settings) -> None:
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    # Host names other than these are refused before any lookup: no test reaches a resolver.
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.2"]
    settings.SEARCH_IMAGE_URL_TIMEOUT_S = 0.5


@pytest.fixture
def photo_server():
    server = LoopbackServer()
    yield server
    server.close()


def _search(client, **params):
    return client.post("/api/v1/search/", params, format="json")


def _skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["product"]["sku"] for r in response.json()["results"]]


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error["message"]


def test_a_photo_by_url_or_in_base64_finds_its_product(api_client, indexed_catalog, photo_server) -> None:
    products, photos = indexed_catalog
    url = photo_server.serve("/q/blue.jpg", photos["BLU-1"], "image/jpeg")
    by_url = api_client.post("/api/v1/search/", {"image_url": url, "limit": 3}, format="json")
    assert _skus(by_url)[0] == "BLU-1"
    assert photo_server.count("/q/blue.jpg") == 1
    first = by_url.json()["results"][0]["product"]
    assert set(first) >= {"link", "url", "image_url"}

    encoded = base64.b64encode(photos["GRN-1"]).decode()
    assert _skus(_search(api_client, image_base64=encoded, limit=3))[0] == "GRN-1"
    data_url = "data:image/jpeg;base64," + encoded
    assert _skus(_search(api_client, image_base64=data_url, limit=3, crop="0,0,32,32"))


@pytest.mark.parametrize(
    ("path", "status", "code", "reason"),
    [
        ("/missing/q.jpg", 502, "image_url_unreachable", "http_404"),
        ("/error", 502, "image_url_unreachable", "http_500"),
        ("/slow", 502, "image_url_unreachable", "timeout"),
        ("/page.html", 400, "image_url_refused", "not_an_image"),
        ("/truncated.jpg", 400, "image_url_refused", "corrupt_image"),
        ("/to?http://127.0.0.2:9/q.jpg", 400, "image_url_refused", "private_address"),
        ("/redirect/4", 400, "image_url_refused", "too_many_redirects"),
    ],
)
def test_image_urls_that_fail_say_why(
    api_client, active_model, photo_server, path, status, code, reason
) -> None:
    message = _error(_search(api_client, image_url=photo_server.url(path)), status, code)
    assert f"({reason})" in message


def test_urls_the_guard_refuses_open_no_connection(api_client, active_model, photo_server) -> None:
    for url in ("http://[::1]:9/q.jpg", "http://localhost:9/q.jpg", "file:///etc/hostname", "gopher://x/"):
        _error(_search(api_client, image_url=url), 400, "image_url_refused")
    assert photo_server.requests == []


def test_bad_inline_photos(api_client, active_model, settings) -> None:
    _error(_search(api_client, image_base64="not base64!"), 400, "invalid_parameter")
    too_many = _search(api_client, image_base64=base64.b64encode(image_bytes()).decode(), product_id=1)
    assert "query" in too_many.json()["error"]["fields"]
    broken = base64.b64encode(b"\x89PNG not really").decode()
    _error(_search(api_client, image_base64=broken), 400, "invalid_image")
    settings.MAX_UPLOAD_BYTES = 100
    _error(_search(api_client, image_base64=base64.b64encode(image_bytes()).decode()), 413, "image_too_large")


def test_a_deactivated_product_leaves_results_before_its_vectors_are_updated(
    api_client, indexed_catalog, django_capture_on_commit_callbacks
) -> None:
    products, photos = indexed_catalog
    with django_capture_on_commit_callbacks(execute=False) as pending:  # the payload update has not run
        products_deactivate(product_ids=[products["RED-1"].pk])
    assert pending  # product_changed is waiting to reach the workers
    image_search = api_client.post(
        "/api/v1/search/", {"image_base64": base64.b64encode(photos["RED-1"]).decode()}, format="json"
    )
    assert "RED-1" not in _skus(image_search)
    more_like = _search(api_client, product_id=products["RED-1"].pk)
    _error(more_like, 404, "product_not_found")
    assert api_client.get(f"/products/{products['RED-1'].pk}/").status_code == 404


def test_the_schema_documents_the_new_inputs_and_the_shops_link(api_client) -> None:
    schema = api_client.get("/api/v1/schema/", {"format": "json"}).json()
    search_input = schema["components"]["schemas"]["SearchInputRequest"]["properties"]
    assert {"image", "image_url", "image_base64", "product_id", "image_id"} <= set(search_input)
    hit = schema["components"]["schemas"]["ProductHitOutput"]["properties"]
    assert hit["link"]["format"] == "uri"
    responses = schema["paths"]["/api/v1/search/"]["post"]["responses"]
    assert "image_url_refused" in responses["400"]["description"]
    assert "image_url_unreachable" in responses["502"]["description"]
