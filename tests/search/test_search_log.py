"""Searches are logged and answer with a search_id; clicks on results are recorded; shoppers' photos are
kept only when asked and deleted after the retention; the admin dashboard draws the log."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apikeys import services as key_services
from search import log_selectors, photo_storage
from search.models import QueryKind, SearchClick, SearchLog, SearchPhoto
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db
SHOP = "https://shop.example"


@pytest.fixture(autouse=True)
def photo_dir(settings, tmp_path):
    settings.SEARCH_LOG_PHOTOS_DIR = tmp_path / "search-photos"
    return settings.SEARCH_LOG_PHOTOS_DIR


def _photo(data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile("q.jpg", data, content_type="image/jpeg")


def _click(client, body: dict, **headers):
    return client.post("/api/v1/events/", body, format="json", **headers)


def _photo_files() -> list[str]:
    return photo_storage.files_older_than(time.time() + 60)


def test_search_by_sku(api_client, indexed_catalog) -> None:
    products, _ = indexed_catalog
    answer = api_client.post("/api/v1/search/", {"sku": "GRN-1", "limit": 8}, format="json")
    assert answer.status_code == 200, answer.content
    skus = [r["product"]["sku"] for r in answer.json()["results"]]
    assert sorted(skus) == ["BLU-1", "RED-1"]  # the product itself is left out, as for product_id
    missing = api_client.post("/api/v1/search/", {"sku": "NOPE"}, format="json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "product_not_found"
    assert "NOPE" in missing.json()["error"]["message"]
    both = api_client.post(
        "/api/v1/search/", {"sku": "GRN-1", "product_id": products["RED-1"].pk}, format="json"
    )
    assert both.status_code == 400 and "query" in both.json()["error"]["fields"]


def test_every_search_is_logged_under_its_search_id(api_client, indexed_catalog, issue_key) -> None:
    products, photos = indexed_catalog
    key, key_row = issue_key
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ORIGIN=SHOP)
    answer = api_client.post(
        "/api/v1/search/",
        {"image": _photo(photos["RED-1"]), "limit": 2, "category": "kitchen"},
        format="multipart",
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    logged = SearchLog.objects.get(pk=body["search_id"])
    assert logged.query_kind == QueryKind.PHOTO and logged.api_key == key_row and logged.user is None
    assert logged.filters == {"category": ["kitchen"]} and logged.limit == 2
    assert logged.model_version == body["model_version"]
    assert logged.latency_ms == pytest.approx(body["timings_ms"]["total"])
    assert [(r["position"], r["product_id"], r["image_id"]) for r in logged.results] == [
        (i, r["product"]["id"], r["image_id"]) for i, r in enumerate(body["results"], start=1)
    ]
    assert [r["score"] for r in logged.results] == [r["score"] for r in body["results"]]
    assert logged.top_product_id == products["RED-1"].pk and logged.result_count == 2
    assert logged.no_match is None and {r["match"] for r in logged.results} == {None}  # not calibrated
    assert logged.photo is None and _photo_files() == []  # SEARCH_LOG_PHOTOS is off by default

    api_client.credentials()
    by_sku = api_client.post("/api/v1/search/", {"sku": "RED-1"}, format="json").json()
    row = SearchLog.objects.get(pk=by_sku["search_id"])
    assert (row.query_kind, row.query_product_id, row.api_key) == (QueryKind.SKU, products["RED-1"].pk, None)
    # Errors are not searches: nothing logged.
    api_client.post("/api/v1/search/", {"sku": "NOPE"}, format="json")
    assert SearchLog.objects.count() == 2


def test_photos_are_kept_only_when_asked_once_per_distinct_photo(
    api_client, indexed_catalog, settings
) -> None:
    _, photos = indexed_catalog
    settings.SEARCH_LOG_PHOTOS = True
    for _ in range(2):
        api_client.post("/api/v1/search/", {"image": _photo(photos["BLU-1"])}, format="multipart")
    api_client.post(
        "/api/v1/search/", {"image": _photo(photos["RED-1"]), "crop": "0,0,32,32"}, format="multipart"
    )
    assert SearchPhoto.objects.count() == 2 and len(_photo_files()) == 2
    cropped = SearchLog.objects.get(crop__isnull=False)
    assert cropped.crop == [0, 0, 32, 32]
    assert photo_storage.path_of(cropped.photo.file).read_bytes() == photos["RED-1"]
    # Never under MEDIA_ROOT (served publicly), never reachable by URL.
    assert not str(photo_storage.path_of(cropped.photo.file)).startswith(str(settings.MEDIA_ROOT))


@pytest.fixture
def issue_key(db):
    issued = key_services.api_key_create(name="shop", kind="publishable", origins=[SHOP])
    return issued.secret, issued.key


def test_clicks_are_recorded_once_and_checked(api_client, indexed_catalog, issue_key) -> None:
    products, photos = indexed_catalog
    key, _ = issue_key
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_ORIGIN": SHOP}
    answer = api_client.post(
        "/api/v1/search/", {"image": _photo(photos["GRN-1"]), "limit": 3}, format="multipart", **headers
    ).json()
    second = answer["results"][1]["product"]["id"]
    click = {"search_id": answer["search_id"], "product_id": second, "position": 2, "type": "click"}
    recorded = _click(api_client, click, **headers)
    assert recorded.status_code == 202, recorded.content
    assert _click(api_client, click, **headers).status_code == 202  # a retried report
    stored = SearchClick.objects.get()
    assert (str(stored.search_id), stored.product_id, stored.position) == (answer["search_id"], second, 2)

    def refused(body: dict, code: str, **extra) -> None:
        response = _click(api_client, {**click, **body}, **{**headers, **extra})
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == code

    refused({"position": 1}, "result_not_shown")
    refused({"position": 9}, "result_not_shown")
    refused({"search_id": str(uuid.uuid4())}, "search_not_found")
    refused({"type": "purchase"}, "invalid_parameter")
    refused({"search_id": "not-a-uuid"}, "invalid_parameter")
    # The same search reported without the key that made it (or with another key) is no search of theirs.
    api_client.credentials()
    response = _click(api_client, click)
    assert response.status_code == 400 and response.json()["error"]["code"] == "search_not_found"
    assert SearchClick.objects.count() == 1


def test_retention_deletes_old_photos_rows_and_files(
    api_client, indexed_catalog, settings, django_capture_on_commit_callbacks
) -> None:
    from workers.tasks import purge_search_photos

    _, photos = indexed_catalog
    settings.SEARCH_LOG_PHOTOS = True
    settings.SEARCH_LOG_RETENTION_DAYS = 30
    for sku in ("RED-1", "GRN-1"):
        api_client.post("/api/v1/search/", {"image": _photo(photos[sku])}, format="multipart")
    old = SearchPhoto.objects.get(sha256=photo_storage.write_photo(photos["RED-1"])[0])
    SearchPhoto.objects.filter(pk=old.pk).update(last_searched_at=timezone.now() - timedelta(days=31))
    # A file no row names (a crash between the row's and the file's deletion), older than the retention.
    sha, orphan = photo_storage.write_photo(image_bytes(color=(1, 2, 3)))
    stale = time.time() - 40 * 86400
    os.utime(photo_storage.path_of(orphan), (stale, stale))
    old_file = photo_storage.path_of(old.file)
    assert old_file.is_file() and len(_photo_files()) == 3

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = purge_search_photos.apply().get()
        assert old_file.is_file(), "a file must outlive its row until the deletion commits"
    assert result == {"photos": 1, "orphan_files": 1} and callbacks
    assert not old_file.exists() and not photo_storage.path_of(orphan).exists()
    assert list(SearchPhoto.objects.values_list("sha256", flat=True)) != [old.sha256]
    assert SearchPhoto.objects.count() == 1 and len(_photo_files()) == 1
    # The searches stay in the log (the dashboard counts them); only the photo is gone.
    assert SearchLog.objects.count() == 2 and SearchLog.objects.filter(photo__isnull=True).count() == 1
    assert purge_search_photos.apply().get() == {"photos": 0, "orphan_files": 0}


def test_feedback_examples_pair_kept_photos_with_clicks(api_client, indexed_catalog, settings) -> None:
    products, photos = indexed_catalog
    settings.SEARCH_LOG_PHOTOS = True
    answer = api_client.post(
        "/api/v1/search/", {"image": _photo(photos["BLU-1"]), "limit": 3}, format="multipart"
    ).json()
    shown = [r["product"]["id"] for r in answer["results"]]
    _click(
        api_client, {"search_id": answer["search_id"], "product_id": shown[2], "position": 3, "type": "click"}
    )
    # A search without a kept photo gives no example.
    settings.SEARCH_LOG_PHOTOS = False
    plain = api_client.post("/api/v1/search/", {"image": _photo(photos["RED-1"])}, format="multipart").json()
    _click(
        api_client,
        {
            "search_id": plain["search_id"],
            "product_id": plain["results"][0]["product"]["id"],
            "position": 1,
            "type": "click",
        },
    )

    [example] = list(log_selectors.feedback_examples())
    sku_of = {p.pk: p.sku for p in products.values()}
    assert example.search_id == answer["search_id"]
    assert Path(example.photo_path).read_bytes() == photos["BLU-1"]
    assert (example.product_id, example.sku) == (shown[2], sku_of[shown[2]])
    assert example.negative_product_ids == tuple(shown[:2])  # shown above the click, skipped
    assert example.negative_skus == tuple(sku_of[p] for p in shown[:2])
    [everything] = list(log_selectors.feedback_examples(skipped="all"))
    assert everything.negative_product_ids == tuple(shown[:2])


def test_dashboard_draws_the_log(admin_client, api_client, indexed_catalog) -> None:
    products, photos = indexed_catalog
    for sku in ("RED-1", "GRN-1", "RED-1"):
        answer = api_client.post(
            "/api/v1/search/", {"image": _photo(photos[sku]), "limit": 3}, format="multipart"
        ).json()
        if sku == "RED-1":
            first = answer["results"][0]["product"]["id"]
            _click(
                api_client,
                {"search_id": answer["search_id"], "product_id": first, "position": 1, "type": "click"},
            )
    positions = log_selectors.click_through_by_position(positions=3)
    assert [(p.shown, p.clicked) for p in positions] == [(3, 2), (3, 0), (3, 0)]
    assert log_selectors.most_clicked_products() == [(products["RED-1"].pk, "Red mug", 2)]
    assert log_selectors.most_missed_products() == [(products["GRN-1"].pk, "Green lamp", 1)]
    [today] = log_selectors.daily_stats()
    assert today.searches == 3 and today.p95_latency_ms > 0 and today.no_match_rate is None

    page = admin_client.get("/admin/search/searchlog/dashboard/?days=7")
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        "last 7 days" in html and html.count('src="data:image/png;base64,') == 5
    )  # no verdicts: no no-match plot
    assert "Red mug" in html and "Green lamp" in html
    assert admin_client.get("/admin/search/searchlog/").status_code == 200
