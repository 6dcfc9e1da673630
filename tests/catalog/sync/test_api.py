"""Shops that push: ``POST /api/v1/catalog/sync/`` (NDJSON) answers 202 with a run, read back with
``GET /api/v1/catalog/sync/<id>/``; the run is read and its images fetched off the request."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from apikeys.services import api_key_create
from catalog.models import Product, ProductImage, SyncRun
from tests.catalog.sync.conftest import Shop
from workers import embedded

NDJSON = "application/x-ndjson"


def _push(client, body: bytes, *, query: str = "", content_type: str = NDJSON):
    return client.generic("POST", f"/api/v1/catalog/sync/{query}", body, content_type=content_type)


@pytest.mark.django_db(transaction=True)
def test_a_pushed_feed_is_queued_then_synced_off_the_request(auth_client, shop: Shop, active_model) -> None:
    lines = [
        f'{{"sku": "TEE-1", "title": "Organic Tee", "price": "25.00 USD", "link": "https://shop.test/tee", '
        f'"images": ["{shop.picture("/cdn/tee.jpg")}"]}}',
        '{"sku": "BAG-1", "title": "Canvas Tote", "price": 15, "currency": "EUR"}',
        '{"sku": "BAD", "title": "x", "price": "free"}',
        '{"sku": "LOCAL", "title": "x", "images": ["photos/local.jpg"]}',
    ]
    response = _push(auth_client, ("\n".join(lines) + "\n").encode())
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] in ("queued", "running", "fetching", "done")
    assert response["Location"] == body["url"] and body["url"].endswith(f"/api/v1/catalog/sync/{body['id']}/")
    assert embedded.sync_runner_idle(timeout_s=60)

    progress = auth_client.get(f"/api/v1/catalog/sync/{body['id']}/")
    assert progress.status_code == 200
    run = progress.json()
    assert (run["state"], run["origin"], run["format"], run["full"]) == ("done", "api", "jsonl", False)
    counts = run["counts"]
    assert (counts["records"], counts["products_created"], counts["images_fetched"], counts["errors"]) == (
        2,
        2,
        1,
        2,
    )
    assert [(e["position"], e["sku"], e["code"]) for e in run["errors"]] == [
        (3, "BAD", "invalid_price"),
        (4, "LOCAL", "local_images_disabled"),
    ]
    assert run["duration_s"] is not None and run["finished_at"]
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["BAG-1", "TEE-1"]
    assert ProductImage.objects.get().index_status == "indexed"
    assert not SyncRun.objects.get().upload  # the pushed body is not kept once read


@pytest.mark.django_db(transaction=True)
def test_a_full_push_deactivates_what_it_no_longer_lists(auth_client, media_root) -> None:
    _push(auth_client, b'{"sku": "A", "title": "a"}\n{"sku": "B", "title": "b"}\n', query="?full=true")
    assert embedded.sync_runner_idle(timeout_s=60)
    response = _push(auth_client, b'{"sku": "A", "title": "a"}\n', query="?full=true")
    assert embedded.sync_runner_idle(timeout_s=60)
    run = auth_client.get(response.json()["url"]).json()
    assert (run["full"], run["counts"]["products_removed"]) == (True, 1)
    assert list(Product.objects.filter(active=True).values_list("sku", flat=True)) == ["A"]


@pytest.mark.django_db
def test_only_catalog_writers_may_push_or_read_runs(api_client, django_user_model, media_root) -> None:
    body = b'{"sku": "A", "title": "a"}\n'
    assert _push(api_client, body).status_code == 401
    clerk = django_user_model.objects.create_user("clerk", password="pw-for-tests-only")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=clerk).key}")
    response = _push(api_client, body)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "permission_denied")
    assert api_client.get("/api/v1/catalog/sync/1/").status_code == 403
    search_only = api_key_create(kind="secret", name="search", scopes=["search"]).secret
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {search_only}")
    response = _push(api_client, body)
    assert (response.status_code, response.json()["error"]["code"]) == (403, "insufficient_scope")
    assert not SyncRun.objects.exists()

    writer = api_key_create(kind="secret", name="shop", scopes=["catalog:write"]).secret
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {writer}")
    queued = _push(api_client, body)
    assert queued.status_code == 202, queued.content
    assert api_client.get(queued.json()["url"]).json()["state"] == "queued"


@pytest.mark.django_db
def test_bad_pushes_get_one_clear_error_and_keep_nothing(auth_client, media_root, settings) -> None:
    empty = _push(auth_client, b"")
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "empty_feed")
    wrong_type = _push(auth_client, b'{"sku": "A"}', content_type="text/csv")
    assert (wrong_type.status_code, wrong_type.json()["error"]["code"]) == (415, "unsupported_media_type")
    bad_flag = _push(auth_client, b'{"sku": "A"}\n', query="?full=maybe")
    assert (bad_flag.status_code, bad_flag.json()["error"]["code"]) == (400, "invalid_parameter")
    settings.CATALOG_SYNC_MAX_PUSH_BYTES = 1000
    big = _push(auth_client, b'{"sku": "A", "title": "' + b"x" * 2000 + b'"}\n')
    assert (big.status_code, big.json()["error"]["code"]) == (413, "feed_too_large")
    assert not SyncRun.objects.exists()
    assert not (media_root / "sync-uploads").exists() or not any((media_root / "sync-uploads").iterdir())
    missing = auth_client.get("/api/v1/catalog/sync/999999/")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "sync_run_not_found")


def test_the_schema_documents_the_sync_api(api_client) -> None:
    schema = api_client.get("/api/v1/schema/", {"format": "json"}).json()
    push = schema["paths"]["/api/v1/catalog/sync/"]["post"]
    assert "application/x-ndjson" in push["requestBody"]["content"]
    assert {"202", "400", "401", "403", "413", "415"} <= set(push["responses"])
    assert (
        "sync_run_not_found"
        in schema["paths"]["/api/v1/catalog/sync/{run_id}/"]["get"]["responses"]["404"]["description"]
    )
