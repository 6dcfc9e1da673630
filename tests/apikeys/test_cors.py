"""CORS for the widget's endpoints, decided by the publishable key: preflights, real requests, errors."""

from __future__ import annotations

import pytest
from django.test import Client

from apikeys import keys, services
from apikeys.models import ApiKey
from tests.apikeys.conftest import OTHER_SHOP, SHOP

pytestmark = pytest.mark.django_db
STRANGER = "https://evil.example"
ACAO = "Access-Control-Allow-Origin"


def _preflight(path: str, origin: str):
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )


def _post(path: str, key: str | None, origin: str | None, body: dict | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    if origin:
        headers["HTTP_ORIGIN"] = origin
    return Client().post(path, body or {}, content_type="application/json", **headers)


def _cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize("path", ["/api/v1/search/", "/api/v1/events/"])
def test_preflight_is_answered_for_allowed_origins_only(pk_key, path) -> None:
    for origin in (SHOP, OTHER_SHOP):
        allowed = _preflight(path, origin)
        assert allowed.status_code == 200
        assert allowed[ACAO] == origin
        assert "authorization" in allowed["Access-Control-Allow-Headers"]
        assert "POST" in allowed["Access-Control-Allow-Methods"]
        assert "origin" in allowed["Vary"].lower()
    assert _cors_headers(_preflight(path, STRANGER)) == {}
    assert "Access-Control-Allow-Credentials" not in allowed  # the widget sends no cookies


def test_a_request_with_a_publishable_key_gets_its_own_origins_only(pk_key, issue) -> None:
    # Another shop's key allows STRANGER: the union would allow it, this key does not.
    issue("publishable", origins=[STRANGER])
    answer = _post("/api/v1/search/", pk_key, SHOP)
    assert answer.status_code == 400  # past the key, the origin and the throttle: the body has no query
    assert answer[ACAO] == SHOP and answer["Access-Control-Expose-Headers"].lower() == "retry-after"
    refused = _post("/api/v1/search/", pk_key, STRANGER)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    assert _cors_headers(refused) == {}
    no_origin = _post("/api/v1/search/", pk_key, None)
    assert no_origin.status_code == 403 and no_origin.json()["error"]["code"] == "origin_not_allowed"


def test_errors_from_an_allowed_origin_carry_cors_headers(pk_key, settings) -> None:
    key = ApiKey.objects.get(digest=keys.digest(pk_key))
    services.api_key_update(key=key, name=key.name, scopes=None, origins=[SHOP], rate="1/min")
    assert _post("/api/v1/search/", pk_key, SHOP).status_code == 400
    throttled = _post("/api/v1/search/", pk_key, SHOP)
    assert throttled.status_code == 429 and throttled[ACAO] == SHOP and "Retry-After" in throttled
    bad_event = _post("/api/v1/events/", pk_key, SHOP, {"search_id": "x"})
    assert bad_event.status_code == 429 and bad_event[ACAO] == SHOP  # the key's one bucket
    services.api_key_revoke(key=key)
    revoked = _post("/api/v1/search/", pk_key, SHOP)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "api_key_revoked"
    assert revoked[ACAO] == SHOP  # the widget can show why


def test_a_body_refused_for_its_size_carries_cors_headers(pk_key, settings) -> None:
    # Refused before it is read (config/body_limit.py), yet the shop's page can read why.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    answer = _post("/api/v1/search/", pk_key, SHOP, {"image_base64": "A" * 4096})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "request_too_large"
    assert answer[ACAO] == SHOP


def test_secret_keys_and_other_endpoints_get_no_cors(pk_key, issue) -> None:
    secret = issue(scopes=["search"])
    answer = _post("/api/v1/search/", secret, SHOP)
    assert answer.status_code == 400 and _cors_headers(answer) == {}
    assert _cors_headers(_preflight("/api/v1/products/", SHOP)) == {}
    products = Client().get("/api/v1/products/", HTTP_ORIGIN=SHOP)
    assert products.status_code == 200 and _cors_headers(products) == {}


def test_revoking_the_last_key_of_an_origin_closes_its_preflights(
    pk_key, django_capture_on_commit_callbacks
) -> None:
    assert _preflight("/api/v1/search/", SHOP)[ACAO] == SHOP  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(key=ApiKey.objects.get(digest=keys.digest(pk_key)))
    assert _cors_headers(_preflight("/api/v1/search/", SHOP)) == {}
