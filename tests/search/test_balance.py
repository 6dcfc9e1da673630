"""Balanced answers (search/services/balance.py) through the real model, Qdrant Edge and search log: photo
searches log their vectors, the fit stores an offset per product, and searches order by similarity
plus offset while each hit keeps its similarity as its score."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog import services as catalog_services
from catalog.services import activation
from search import log_selectors, selectors
from search.models import SearchLog
from search.services import balance, search_logs, searching
from tests.fixtures.images import image_bytes
from workers.tasks import balance_answers

pytestmark = pytest.mark.django_db
FEW = 12  # MIN_QUERIES for these tests: the fit's arithmetic does not depend on the pool's size


@pytest.fixture(autouse=True)
def few_queries(monkeypatch):
    monkeypatch.setattr(balance, "MIN_QUERIES", FEW)


def _photo(colour: tuple[int, int, int], pattern: int) -> bytes:
    return image_bytes(color=colour, size=(64, 64), pattern=pattern)


def _search_and_log(data: bytes, limit: int = 3) -> searching.SearchOutcome:
    query = searching.SearchQuery(image=data, limit=limit)
    outcome = searching.search(query)
    search_logs.search_log_record(query=query, outcome=outcome)
    return outcome


def _traffic(photos: dict[str, bytes], n: int) -> None:
    """Shoppers' photos, all nearest to the red mug: it is the catalog's hub for this traffic."""
    for i in range(n):
        tint = (200 + i % 40, 20 + i % 30, 20 + (7 * i) % 30)
        _search_and_log(_photo(tint, 1 + i % 3))


def test_photo_searches_log_their_vector_and_other_searches_none(indexed_catalog) -> None:
    products, photos = indexed_catalog
    outcome = _search_and_log(photos["GRN-1"])
    row = SearchLog.objects.get(pk=outcome.search_id)
    stored = np.frombuffer(bytes(row.query_vector), dtype=np.float16)
    assert outcome.query_vector is not None
    assert stored.shape == outcome.query_vector.shape
    assert np.allclose(stored, outcome.query_vector, atol=2e-3)
    by_product = searching.SearchQuery(product_id=products["RED-1"].pk, limit=2)
    more = searching.search(by_product)
    assert more.query_vector is None
    search_logs.search_log_record(query=by_product, outcome=more)
    assert SearchLog.objects.get(pk=more.search_id).query_vector is None
    model = selectors.active_model()
    assert log_selectors.query_vector_count(model.version) == 1
    vectors = log_selectors.recent_query_vectors(model.version, 10, model.embedding_dim)
    assert vectors.shape == (1, model.embedding_dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_fit_lowers_the_hub_and_searches_order_by_similarity_plus_offset(
    indexed_catalog, settings
) -> None:
    products, photos = indexed_catalog
    model = selectors.active_model()
    _traffic(photos, FEW - 1)
    assert not balance.balance_due(model)
    assert balance_answers.apply().get() == {"fitted": False}
    _traffic(photos, 1)
    assert balance.balance_due(model)

    result = balance_answers.apply().get()
    assert result == {"fitted": True, "queries": FEW, "products": 3, "skipped": ""}
    model.refresh_from_db()
    offsets = {int(k): v for k, v in model.balance["offsets"].items()}
    assert set(offsets) == {p.pk for p in products.values()}
    assert abs(sum(offsets.values())) < 1e-3
    assert min(offsets, key=offsets.__getitem__) == products["RED-1"].pk  # the hub
    assert model.balance["queries"] == FEW and model.balance["fitted_at"]
    assert not balance.balance_due(model)  # until as many new searches are logged as it used

    selectors.forget_active_model()
    query = searching.SearchQuery(image=_photo((210, 60, 60), 2), limit=3)
    settings.SEARCH_BALANCE = False
    plain = searching.search(query)
    settings.SEARCH_BALANCE = True
    balanced = searching.search(query)
    raw = {h.card["product_id"]: h.score for h in plain.hits}
    expected = sorted(raw, key=lambda pid: raw[pid] + offsets[pid], reverse=True)
    assert [h.card["product_id"] for h in balanced.hits] == expected
    # Each hit keeps its own similarity as its score: the offset decides the order only.
    assert {h.card["product_id"]: h.score for h in balanced.hits} == pytest.approx(raw)
    assert balanced.balanced == (expected[0] != plain.hits[0].card["product_id"])
    assert not plain.balanced


def test_a_catalog_with_several_photos_per_product_is_not_balanced(
    indexed_catalog, django_capture_on_commit_callbacks
) -> None:
    products, photos = indexed_catalog
    with django_capture_on_commit_callbacks(execute=True):
        for n, product in enumerate(products.values()):
            catalog_services.product_image_add(product=product, data=_photo((90 + 40 * n, 90, 90), 4))
    model = selectors.active_model()
    model.balance = {"offsets": {str(products["RED-1"].pk): -0.1}, "queries": 1, "fitted_at": "then"}
    model.save(update_fields=["balance"])
    _traffic(photos, FEW)

    outcome = balance.balance_fit(model)
    assert outcome.skipped == "several_photos" and outcome.products == 3
    model.refresh_from_db()
    # An earlier fit no longer applies; the reason is kept, and the catalog is looked at again only
    # after a new pool of searches.
    assert set(model.balance) == {"skipped", "queries", "checked_at"}
    assert model.balance["skipped"] == "several_photos" and model.balance["queries"] == FEW
    assert balance.active_offsets(model) is None
    assert not balance.balance_due(model)
    _traffic(photos, FEW)
    assert balance.balance_due(model)


def test_with_balance_off_nothing_is_due_or_applied(indexed_catalog, settings) -> None:
    products, photos = indexed_catalog
    _traffic(photos, FEW)
    model = selectors.active_model()
    balance.balance_fit(model)
    model.refresh_from_db()
    assert model.balance
    settings.SEARCH_BALANCE = False
    assert not balance.balance_due(model)
    assert balance.active_offsets(model) is None


def test_a_refit_waits_for_a_new_pool_and_older_vectors_are_dropped(indexed_catalog, monkeypatch) -> None:
    products, photos = indexed_catalog
    monkeypatch.setattr(balance, "MAX_QUERIES", FEW)
    model = selectors.active_model()
    _traffic(photos, FEW + 5)
    assert balance.balance_fit(model).queries == FEW  # the most recent pool only
    model.refresh_from_db()
    assert log_selectors.query_vector_count(model.version) == FEW  # the 5 older ones dropped
    assert SearchLog.objects.filter(query_vector__isnull=True).count() == 5  # their log entries stay
    _traffic(photos, FEW - 1)
    assert not balance.balance_due(model)
    _traffic(photos, 1)
    assert balance.balance_due(model)


def test_no_vector_is_logged_with_balance_off(indexed_catalog, settings) -> None:
    products, photos = indexed_catalog
    settings.SEARCH_BALANCE = False
    outcome = _search_and_log(photos["RED-1"])
    assert SearchLog.objects.get(pk=outcome.search_id).query_vector is None


def test_the_admin_shows_the_fit_in_a_line(indexed_catalog, admin_client) -> None:
    products, photos = indexed_catalog
    model = selectors.active_model()
    page = admin_client.get(f"/admin/search/modelversion/{model.pk}/change/")
    assert page.status_code == 200 and "not fitted" in page.content.decode()
    _traffic(photos, FEW)
    balance.balance_fit(model)
    page = admin_client.get(f"/admin/search/modelversion/{model.pk}/change/").content.decode()
    assert f"on {FEW} photo searches: 3 products, offsets -" in page
    assert '"offsets"' not in page  # the offsets themselves are not dumped on the page


def test_the_api_answer_says_whether_balancing_moved_the_first_product(
    indexed_catalog, api_client, settings
) -> None:
    products, photos = indexed_catalog
    _traffic(photos, FEW)
    balance.balance_fit(selectors.active_model())
    selectors.forget_active_model()
    photo = _photo((205, 70, 40), 3)

    def ask() -> dict:
        upload = SimpleUploadedFile("q.jpg", photo, content_type="image/jpeg")
        answer = api_client.post("/api/v1/search/", {"image": upload, "limit": 3}, format="multipart")
        assert answer.status_code == 200, answer.content
        return answer.json()

    settings.SEARCH_BALANCE = False
    plain = ask()
    settings.SEARCH_BALANCE = True
    body = ask()
    assert plain["balanced"] is False
    moved = body["results"][0]["product"]["id"] != plain["results"][0]["product"]["id"]
    assert body["balanced"] is moved
    if moved:
        assert body["no_match"] is None and {r["match"] for r in body["results"]} == {None}
    assert sorted(r["score"] for r in body["results"]) == sorted(r["score"] for r in plain["results"])


def test_the_search_log_page_leaves_the_vector_out(indexed_catalog, admin_client) -> None:
    products, photos = indexed_catalog
    outcome = _search_and_log(photos["GRN-1"])
    page = admin_client.get(f"/admin/search/searchlog/{outcome.search_id}/change/")
    assert page.status_code == 200
    assert "Query vector" not in page.content.decode() and "photo" in page.content.decode()


def test_a_deactivated_product_gets_no_share(indexed_catalog, django_capture_on_commit_callbacks) -> None:
    products, photos = indexed_catalog
    with django_capture_on_commit_callbacks(execute=True):
        activation.products_deactivate(product_ids=[products["BLU-1"].pk])
    _traffic(photos, FEW)
    model = selectors.active_model()
    assert balance.balance_fit(model).products == 2
    model.refresh_from_db()
    assert set(model.balance["offsets"]) == {str(products["RED-1"].pk), str(products["GRN-1"].pk)}
