"""Shopify CSV end to end; image URLs asked again only when due (ETag / Last-Modified, content hash);
feeds from URLs naming local files; scheduled catalog sources and their conditional feed requests."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from catalog.models import CatalogSource, ImageSource, Product, ProductImage, SyncRun
from catalog.services.sync import sources_start_due
from tests.catalog.feeds.helpers import FIXTURES
from tests.catalog.sync.conftest import Shop, sync
from tests.fixtures.images import image_bytes
from workers import embedded

pytestmark = pytest.mark.django_db(transaction=True)

SHOPIFY = (FIXTURES / "shopify_products.csv").read_text(encoding="utf-8-sig")


def test_shopify_csv_end_to_end(shop: Shop, active_model) -> None:
    feed = shop.host(SHOPIFY, "https://cdn.shopify.example").encode()
    url = shop.server.serve("/products_export.csv", feed, "text/csv")
    run = sync(url, "--store-url", "https://northwind.example", "--currency", "USD").run
    assert (run.state, run.format) == ("done", "shopify_csv")
    assert run.products_created == Product.objects.count() > 0
    shirt = Product.objects.get(sku="linen-shirt")
    assert shirt.link == "https://northwind.example/products/linen-shirt"
    assert shirt.currency == "USD"
    assert len(shirt.attributes["variants"]) >= 2
    assert shirt.images.count() == run.images_fetched - sum(
        p.images.count() for p in Product.objects.exclude(pk=shirt.pk)
    )
    assert all(i.source_url.startswith(shop.server.url("/cdn/")) for i in ProductImage.objects.all())
    requests = shop.image_requests()
    again = sync(url, "--store-url", "https://northwind.example", "--currency", "USD").run
    assert (again.products_unchanged, again.products_updated, again.images_fetched) == (
        run.products_created,
        0,
        0,
    )
    assert shop.image_requests() == requests


def test_due_images_are_asked_with_their_validators_and_replaced_only_when_the_bytes_change(
    shop: Shop, active_model, settings
) -> None:
    picture = shop.picture("/cdn/vase.jpg")
    feed = f'{{"sku": "VASE", "title": "Vase", "images": ["{picture}"]}}\n'.encode()
    url = shop.server.serve("/feed.jsonl", feed, "application/x-ndjson")
    sync(url)
    first = ProductImage.objects.get()
    source = ImageSource.objects.get()
    assert (source.etag, source.sha256, source.error) == ('"/cdn/vase.jpg-v1"', first.sha256, "")

    settings.CATALOG_SYNC_IMAGE_RECHECK_S = 0  # every known picture is due again
    checked = sync(url).run
    assert (checked.images_queued, checked.images_unchanged, checked.images_fetched) == (1, 1, 0)
    last_request = shop.server.requests[-1]
    assert last_request[0] == "/cdn/vase.jpg" and last_request[1]["If-None-Match"] == '"/cdn/vase.jpg-v1"'
    assert list(ProductImage.objects.values_list("pk", flat=True)) == [first.pk]

    # Same bytes under a new ETag: a 200, recognised by its content hash; nothing written.
    shop.server.serve("/cdn/vase.jpg", shop.pictures["/cdn/vase.jpg"], "image/jpeg", etag='"other"')
    same = sync(url).run
    assert (same.images_unchanged, same.images_fetched) == (1, 0)
    assert list(ProductImage.objects.values_list("pk", flat=True)) == [first.pk]

    # New bytes behind the same URL: the new picture replaces the old one (and its vector).
    shop.picture("/cdn/vase.jpg", version=2)
    changed = sync(url).run
    assert changed.images_fetched == 1
    now = ProductImage.objects.get()
    assert now.pk != first.pk and now.sha256 == ImageSource.objects.get().sha256 != first.sha256
    assert now.source_url == picture and now.index_status == "indexed"


def test_a_feed_fetched_from_a_url_cannot_name_a_local_file(shop: Shop, media_root, tmp_path: Path) -> None:
    # The file exists next to where a manifest would be, and is a valid image: only the rule refuses it.
    (tmp_path / "secret.jpg").write_bytes(image_bytes(pattern=4))
    lines = [
        f'{{"sku": "LOCAL", "title": "x", "images": ["{tmp_path / "secret.jpg"}"]}}',
        '{"sku": "REL", "title": "x", "images": ["secret.jpg"]}',
        '{"sku": "FILEURL", "title": "x", "images": ["file:///etc/hostname"]}',
        f'{{"sku": "OK", "title": "x", "images": ["{shop.picture("/cdn/ok.jpg")}"]}}',
    ]
    url = shop.server.serve("/feed.jsonl", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
    run = sync(url).run
    assert [(e.position, e.sku, e.code) for e in run.errors.all()] == [
        (1, "LOCAL", "local_images_disabled"),
        (2, "REL", "local_images_disabled"),
        (3, "FILEURL", "invalid_image"),
    ]
    assert list(Product.objects.values_list("sku", flat=True)) == ["OK"]
    assert [i.source_url for i in ProductImage.objects.all()] == [shop.server.url("/cdn/ok.jpg")]


def test_due_sources_start_on_the_background_thread_and_an_unchanged_feed_is_not_read_again(
    shop: Shop, active_model
) -> None:
    picture = shop.picture("/cdn/mug.jpg")
    feed = f'{{"sku": "MUG", "title": "Mug", "images": ["{picture}"]}}\n'.encode()
    url = shop.server.serve("/feed.jsonl", feed, "application/x-ndjson", etag='"feed-v1"')
    source = CatalogSource.objects.create(name="shop", url=url, interval_minutes=60)
    disabled = CatalogSource.objects.create(name="off", url=url + "?off", enabled=False)

    assert len(sources_start_due()) == 1  # queued; with tasks in-process the embedded thread runs it
    assert embedded.sync_runner_idle(timeout_s=60)
    run = SyncRun.objects.get(source=source)
    assert (run.state, run.origin, run.products_created, run.images_fetched) == ("done", "schedule", 1, 1)
    source.refresh_from_db()
    assert source.feed_etag == '"feed-v1"'
    assert source.next_run_at > timezone.now() + timedelta(minutes=59)
    assert not disabled.runs.exists()
    assert sources_start_due() == []  # not due again for an hour

    CatalogSource.objects.filter(pk=source.pk).update(next_run_at=timezone.now() - timedelta(seconds=1))
    assert len(sources_start_due()) == 1
    assert embedded.sync_runner_idle(timeout_s=60)
    second = SyncRun.objects.filter(source=source).first()
    assert (second.state, second.feed_not_modified, second.records) == ("done", True, 0)
    assert shop.server.requests[-1][1].get("If-None-Match") == '"feed-v1"'

    # `sync_catalog URL` of a registered source is that source's run (its validators, its scope).
    by_command = sync(url)
    assert by_command.run.source_id == source.pk and by_command.run.feed_not_modified
    assert "has not changed" in by_command.out


def test_the_embedded_thread_starts_due_sources_on_its_own(shop: Shop, media_root) -> None:
    url = shop.server.serve("/feed.jsonl", b'{"sku": "PLATE", "title": "Plate"}\n', "application/x-ndjson")
    source = CatalogSource.objects.create(name="shop", url=url, interval_minutes=60)
    assert embedded.start_sync_scheduler(interval_s=0.2)
    try:
        assert not embedded.start_sync_scheduler()  # once per process
        deadline = time.monotonic() + 30
        while not SyncRun.objects.filter(source=source, state="done").exists():
            assert time.monotonic() < deadline, "the scheduler did not run the due source"
            time.sleep(0.1)
    finally:
        embedded.stop_sync_scheduler()
    assert embedded.sync_runner_idle(timeout_s=30)
    assert Product.objects.get().sku == "PLATE"
    assert SyncRun.objects.get().origin == "schedule"
