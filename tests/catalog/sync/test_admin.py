"""Catalog sources and sync runs in the admin: a source lists its runs with counts, duration and
errors; "sync now" queues a run (announced after commit, never read in the request)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog import events
from catalog.models import CatalogSource, SyncProblem, SyncRun
from tests.support.recorders import announcements

pytestmark = pytest.mark.django_db


@pytest.fixture
def source_with_runs() -> CatalogSource:
    source = CatalogSource.objects.create(name="Northwind", url="https://northwind.example/feed.xml")
    started = timezone.now() - timedelta(minutes=5)
    run = SyncRun.objects.create(
        source=source, origin="schedule", location=source.url, state="done", format="merchant_xml",
        records=7, products_created=5, products_updated=1, products_unchanged=1, images_fetched=9,
        images_failed=1, error_count=2, started_at=started, finished_at=started + timedelta(seconds=42),
    )  # fmt: skip
    SyncProblem.objects.create(
        run=run, position=5, unit="item", sku="MUG-9", code="invalid_price", message="price: no."
    )
    SyncProblem.objects.create(
        run=run, sku="JKT-1", url="https://cdn.example/x.jpg", code="http_404", message="Cannot fetch it."
    )
    return source


def test_a_source_lists_its_runs_and_a_run_its_errors(admin_client, source_with_runs) -> None:
    page = admin_client.get(f"/admin/catalog/catalogsource/{source_with_runs.pk}/change/").content.decode()
    assert "42.0 s" in page and "5 / 1 / 1 / 0 / 0" in page and "9 / 0 / 1" in page
    listing = admin_client.get("/admin/catalog/catalogsource/").content.decode()
    assert "Northwind" in listing and "(2 errors)" in listing
    run = source_with_runs.runs.get()
    detail = admin_client.get(f"/admin/catalog/syncrun/{run.pk}/change/").content.decode()
    assert "invalid_price" in detail and "https://cdn.example/x.jpg" in detail and "http_404" in detail
    assert admin_client.get("/admin/catalog/syncrun/").status_code == 200


def test_sync_now_queues_a_run_announced_after_commit(admin_client, source_with_runs) -> None:
    with announcements(events.sync_requested) as seen:
        response = admin_client.post(
            "/admin/catalog/catalogsource/",
            {"action": "sync_now", "_selected_action": [source_with_runs.pk]},
            follow=True,
        )
    assert response.status_code == 200 and "Queued 1 sync run(s)" in response.content.decode()
    queued = SyncRun.objects.filter(state="queued").get()
    assert (queued.origin, queued.source_id, queued.full) == ("admin", source_with_runs.pk, True)
    assert seen == []  # the test's transaction never commits: nothing ran, nothing was announced
    source_with_runs.refresh_from_db()
    assert source_with_runs.next_run_at > timezone.now()


def test_a_source_must_be_an_http_url(admin_client) -> None:
    response = admin_client.post(
        "/admin/catalog/catalogsource/add/",
        {"name": "local", "url": "file:///etc/passwd", "format": "auto", "full": "on", "enabled": "on",
         "interval_minutes": "60", "store_url": "", "default_currency": ""},
    )  # fmt: skip
    assert response.status_code == 200 and not CatalogSource.objects.exists()
