"""Google Merchant Center feeds end to end: served from loopback, synced with ``manage.py sync_catalog``,
images fetched by the (in-process) workers, indexed, and searchable; then kept in step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.feeds import FeedProduct, parse_feed
from catalog.models import FetchState, ImageFetch, IndexStatus, Product, ProductImage
from catalog.services.activation import products_purge_inactive
from search.services import searching
from search.vector_store import vector_store
from tests.catalog.feeds.helpers import FIXTURES
from tests.catalog.sync.conftest import Shop, sync

pytestmark = pytest.mark.django_db(transaction=True)

RSS = (FIXTURES / "merchant_rss.xml").read_text()
TSV_HEADER = ["id", "item_group_id", "title", "description", "link", "image_link", "additional_image_link",
              "price", "availability", "brand", "product_type", "color", "size", "gtin"]  # fmt: skip


def _tsv(rows: list[dict[str, str]]) -> bytes:
    lines = ["\t".join(TSV_HEADER)] + ["\t".join(r.get(h, "") for h in TSV_HEADER) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _expected_images(feed: bytes, fmt: str) -> dict[str, list[str]]:
    import io

    return {
        r.sku: [i.url_or_path for i in r.images]
        for r in parse_feed(io.BytesIO(feed), fmt)  # type: ignore[arg-type]
        if isinstance(r, FeedProduct)
    }


def _hit_skus(photo: bytes) -> list[str]:
    outcome = searching.search(searching.SearchQuery(image=photo, limit=20))
    return [h.card["sku"] for h in outcome.hits]


def _payloads(model, sku: str) -> list[dict]:
    ids = [str(pk) for pk in ProductImage.objects.filter(product__sku=sku).values_list("pk", flat=True)]
    return [payload for _, payload in vector_store().retrieve(model.collection, ids).values()]


def test_merchant_xml_first_run_creates_and_the_second_changes_and_fetches_nothing(
    shop: Shop, active_model
) -> None:
    feed = shop.host(RSS, "https://cdn.northwind.example").encode()
    url = shop.server.serve("/feeds/northwind.xml", feed, "application/rss+xml")
    expected = _expected_images(feed, "merchant_xml")

    first = sync(url)
    run = first.run
    assert (run.state, run.format, run.records) == ("done", "merchant_xml", len(expected))
    assert run.products_created == len(expected) == Product.objects.count()
    unique_urls = {u for urls in expected.values() for u in urls}
    assert run.images_queued == run.images_fetched == sum(len(u) for u in expected.values())
    assert shop.image_requests() == len(unique_urls)  # each picture once
    # The feed's own problems are error rows with their item numbers; none stopped the run.
    assert [(e.position, e.sku, e.code) for e in run.errors.all()] == [
        (5, "MUG-9", "invalid_price"),
        (6, "", "missing_field"),
        (8, "TEE-GREY-XL", "invalid_price"),
        (9, "CAP-2", "invalid_availability"),
        (9, "CAP-2", "invalid_image"),
    ]
    jacket = Product.objects.get(sku="JKT-100")
    assert jacket.link == "https://northwind.example/products/field-jacket"
    assert (
        list(jacket.images.order_by("display_order").values_list("source_url", flat=True))
        == expected["JKT-100"]
    )
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}
    front = shop.pictures["/cdn/jkt-100/front.jpg"]
    assert _hit_skus(front)[0] == "JKT-100"
    assert "New images: " in first.out

    requests_before = shop.image_requests()
    rows_before = sorted(ProductImage.objects.values_list("pk", "sha256", "updated_at"))
    products_before = sorted(Product.objects.values_list("pk", "updated_at"))
    second = sync(url).run
    assert (second.state, second.products_created, second.products_updated) == ("done", 0, 0)
    assert second.products_unchanged == len(expected)
    assert (second.images_queued, second.images_fetched, second.images_unchanged) == (
        0,
        0,
        run.images_fetched,
    )
    assert shop.image_requests() == requests_before  # no image asked again
    assert sorted(ProductImage.objects.values_list("pk", "sha256", "updated_at")) == rows_before
    assert sorted(Product.objects.values_list("pk", "updated_at")) == products_before


def test_merchant_tsv_changed_price_reaches_the_vector_payload(shop: Shop, active_model) -> None:
    rows = [
        {"id": "LAMP-1", "title": "Desk lamp", "link": "https://shop.test/lamp", "price": "40.00 EUR",
         "image_link": shop.picture("/cdn/lamp.jpg"), "brand": "Lux", "product_type": "Home > Lighting"},
        {"id": "SOCK-S", "item_group_id": "SOCK", "title": "Wool sock S", "price": "12.00 EUR", "size": "S",
         "image_link": shop.picture("/cdn/sock.jpg"), "availability": "in_stock"},
        {"id": "SOCK-L", "item_group_id": "SOCK", "title": "Wool sock L", "price": "13.00 EUR", "size": "L",
         "image_link": shop.picture("/cdn/sock.jpg"),
         "additional_image_link": shop.picture("/cdn/sock-l.jpg"), "availability": "out_of_stock"},
        {"id": "BAD-1", "title": "Unpriced", "price": "call us"},
    ]  # fmt: skip
    url = shop.server.serve("/feed.tsv", _tsv(rows), "text/tab-separated-values")
    run = sync(url).run
    assert (run.state, run.format, run.products_created) == ("done", "merchant_tsv", 2)
    assert [(e.position, e.sku, e.code) for e in run.errors.all()] == [(5, "BAD-1", "invalid_price")]
    sock = Product.objects.get(sku="SOCK")
    assert [v["sku"] for v in sock.attributes["variants"]] == ["SOCK-S", "SOCK-L"]
    assert sock.images.count() == 2
    assert {p["price"] for p in _payloads(active_model, "LAMP-1")} == {40.0}

    rows[0]["price"] = "35.50 EUR"
    shop.server.serve("/feed.tsv", _tsv(rows), "text/tab-separated-values")
    requests_before = shop.image_requests()
    again = sync(url).run
    assert (again.products_updated, again.products_unchanged, again.images_fetched) == (1, 1, 0)
    assert str(Product.objects.get(sku="LAMP-1").price) == "35.50"
    payloads = _payloads(active_model, "LAMP-1")
    assert payloads and {p["price"] for p in payloads} == {35.5}
    assert shop.image_requests() == requests_before


def test_a_product_missing_from_a_full_run_leaves_search_at_once_and_comes_back(
    shop: Shop, active_model, settings
) -> None:
    def feed(*skus: str) -> bytes:
        return _tsv([{"id": s, "title": f"Product {s}", "price": "10.00 EUR", "image_link": shop.picture(f"/cdn/{s}.jpg")}
                     for s in skus])  # fmt: skip

    url = shop.server.serve("/feed.tsv", feed("A", "B", "C"), "text/tab-separated-values")
    assert sync(url, "--full").run.products_created == 3
    photo_b = shop.pictures["/cdn/B.jpg"]
    assert _hit_skus(photo_b)[0] == "B"

    shop.server.serve("/feed.tsv", feed("A", "C"), "text/tab-separated-values")
    gone = sync(url, "--full").run
    assert (gone.state, gone.products_removed, gone.products_unchanged) == ("done", 1, 2)
    b = Product.objects.get(sku="B")
    assert (b.active, b.deactivated_at is not None) == (False, True)
    assert "B" not in _hit_skus(photo_b)
    assert {p["active"] for p in _payloads(active_model, "B")} == {False}
    assert b.images.count() == 1  # kept, with its vectors: coming back costs no download

    requests_before = shop.image_requests()
    shop.server.serve("/feed.tsv", feed("A", "B", "C"), "text/tab-separated-values")
    back = sync(url, "--full").run
    assert (back.products_reactivated, back.products_removed, back.images_fetched) == (1, 0, 0)
    assert shop.image_requests() == requests_before
    assert _hit_skus(photo_b)[0] == "B"
    assert {p["active"] for p in _payloads(active_model, "B")} == {True}

    # Gone again, and past the retention period: deleted for good, vectors and all.
    shop.server.serve("/feed.tsv", feed("A", "C"), "text/tab-separated-values")
    sync(url, "--full")
    image_ids = [str(pk) for pk in ProductImage.objects.filter(product__sku="B").values_list("pk", flat=True)]
    assert products_purge_inactive() == 0  # still within retention
    later = timezone.now() + timedelta(days=settings.CATALOG_SYNC_RETENTION_DAYS, hours=1)
    assert products_purge_inactive(now=later) == 1
    assert not Product.objects.filter(sku="B").exists()
    assert vector_store().retrieve(active_model.collection, image_ids) == {}
    assert Product.objects.filter(active=True).count() == 2


def test_a_full_run_that_breaks_removes_nothing(shop: Shop, active_model) -> None:
    feed = shop.host(RSS, "https://cdn.northwind.example").encode()
    url = shop.server.serve("/feed.xml", feed, "application/rss+xml")
    sync(url, "--full")
    shop.server.serve("/feed.xml", feed[: len(feed) // 3], "application/rss+xml")  # truncated mid-item
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="The feed broke at"):
        sync(url, "--full")
    assert not Product.objects.filter(active=False).exists()


def test_dead_image_urls_are_error_rows_and_the_run_completes(shop: Shop, active_model, settings) -> None:
    server = shop.server
    bad = {
        "/missing/x.jpg": "http_404",
        "/error": "http_500",
        "/page.html": "not_an_image",
        "/truncated.jpg": "corrupt_image",
        "/huge-declared": "too_large",
        "/to?http://127.0.0.2:9/x.jpg": "private_address",
    }
    settings.MAX_UPLOAD_BYTES = 1024 * 1024  # the fetch cap follows the upload cap
    rows = [{"id": "GOOD", "title": "Good", "price": "1 EUR", "image_link": server.url("/redirect/2"),
             "additional_image_link": shop.picture("/cdn/good.jpg")}]  # fmt: skip
    rows += [
        {"id": f"P{n}", "title": f"P{n}", "price": "1 EUR", "image_link": server.url(path)}
        for n, path in enumerate(bad)
    ]
    url = server.serve("/feed.tsv", _tsv(rows), "text/tab-separated-values")
    run = sync(url).run
    assert run.state == "done"
    assert (run.products_created, run.images_fetched, run.images_failed) == (len(rows), 2, len(bad))
    got = {e.url.replace(server.url(""), ""): e.code for e in run.errors.all()}
    assert got == bad
    assert all(e.sku and e.message.startswith("Cannot fetch") for e in run.errors.all())
    assert Product.objects.get(sku="GOOD").images.count() == 2
    assert set(ImageFetch.objects.values_list("state", flat=True)) == {FetchState.FETCHED, FetchState.FAILED}

    # Next run: refused and missing pictures wait CATALOG_SYNC_IMAGE_RETRY_S; a 5xx is tried again.
    before = server.count("/error")
    again = sync(url).run
    assert server.count("/error") == before + 1 + 2  # one attempt and the fetcher's two retries
    assert server.count("/missing/x.jpg") == 1
    assert again.images_failed == len(bad) and again.images_fetched == 0
