"""Search by a photo's URL (fetched during the request through the fetcher's guard, from a loopback
server the test starts) or by its bytes in base64; and deactivated products leave results at once."""

from __future__ import annotations

import base64
import socket

import pytest

from catalog.fetching import fetch_image, policy_from_settings
from catalog.services.activation import products_deactivate
from search.api.throttling import ImageUrlFetchThrottle
from tests.fixtures.images import image_bytes
from tests.support.loopback import LoopbackServer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_only(settings) -> None:
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    settings.SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
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
        ("/missing/q.jpg", 422, "image_url_unreachable", "http_404"),
        ("/error", 422, "image_url_unreachable", "http_500"),
        ("/slow", 422, "image_url_unreachable", "timeout"),
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
    assert "image_url_unreachable" in responses["422"]["description"]
    assert not any(code.startswith("5") and code != "503" for code in responses)


@pytest.fixture
def fake_resolver(monkeypatch):
    """socket.getaddrinfo answered from ``answers`` (a name -> addresses); any other name does not
    resolve, as with a real resolver's "Name or service not known". No test reaches a real one."""
    answers: dict[str, list[str]] = {}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - socket's names
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port)) for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_host_that_does_not_resolve_is_the_clients_4xx_without_resolver_detail(
    api_client, active_model, settings, fake_resolver
) -> None:
    # The schema's own example: schemathesis sent it, and got a 502 with the resolver's error text.
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["cdn.shop.example"]
    message = _error(
        _search(api_client, image_url="https://cdn.shop.example/photos/42.jpg"), 422, "image_url_unreachable"
    )
    assert "(dns_error)" in message
    assert "Name or service" not in message and "Errno" not in message


def test_what_a_name_resolves_to_is_not_told(api_client, active_model, settings, fake_resolver) -> None:
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["inside.shop.example"]
    fake_resolver["inside.shop.example"] = ["10.20.30.40"]
    message = _error(
        _search(api_client, image_url="http://inside.shop.example/q.jpg"), 400, "image_url_refused"
    )
    assert "(private_address)" in message and "10.20.30.40" not in message


def test_queries_never_reach_the_private_networks_the_catalog_may(
    api_client, active_model, settings, photo_server
) -> None:
    # The operator lets catalog feeds and images come from a private network (here loopback)...
    settings.IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    settings.SEARCH_IMAGE_URL_ALLOW_PRIVATE_NETWORKS = []
    url = photo_server.serve("/inside.png", image_bytes(), "image/png")
    assert fetch_image(url, policy_from_settings(retries=0)).content  # the catalog's fetch reaches it
    # ...which an anonymous search by URL must not reach.
    _error(_search(api_client, image_url=url), 400, "image_url_refused")
    assert photo_server.count("/inside.png") == 1  # only the catalog's fetch


def test_searches_by_url_have_a_budget_per_client(
    api_client, active_model, photo_server, monkeypatch
) -> None:
    rates = {**ImageUrlFetchThrottle.THROTTLE_RATES, "search_url": "2/min"}
    monkeypatch.setattr(ImageUrlFetchThrottle, "THROTTLE_RATES", rates)
    url = photo_server.serve("/q.png", image_bytes(), "image/png")
    for _ in range(2):
        assert _search(api_client, image_url=url).status_code == 200
    _error(_search(api_client, image_url=url), 429, "throttled")
    assert photo_server.count("/q.png") == 2  # the refused search fetched nothing
    # Other kinds of search are not spent by it, and another client has a budget of its own.
    encoded = base64.b64encode(image_bytes()).decode()
    assert _search(api_client, image_base64=encoded).status_code == 200
    other = api_client.post("/api/v1/search/", {"image_url": url}, format="json", REMOTE_ADDR="192.0.2.7")
    assert other.status_code == 200, other.content
