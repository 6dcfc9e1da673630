"""/metrics after real searches and indexing (the tiny real model, the embedded store), parsed with
prometheus_client's text parser and compared with the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search.models import Job, JobState, ReindexStatus
from tests.fixtures.images import image_bytes
from tests.support.metrics import assert_sane_histogram, samples, scrape, value

pytestmark = pytest.mark.django_db

STAGES = ("decode", "embed", "search", "catalog", "total")


def _photo(data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile("q.jpg", data, content_type="image/jpeg")


def test_searches_show_up_as_stage_request_and_embedding_histograms(
    client, api_client, indexed_catalog, active_model
) -> None:
    products, photos = indexed_catalog
    before = scrape(client)
    for sku in ("RED-1", "GRN-1", "BLU-1"):
        response = api_client.post(
            "/api/v1/search/", {"image": _photo(photos[sku]), "limit": 2}, format="multipart"
        )
        assert response.status_code == 200, response.content
    by_product = api_client.post("/api/v1/search/", {"product_id": products["RED-1"].pk}, format="json")
    assert by_product.status_code == 200, by_product.content
    after = scrape(client)

    stage = "lookalike_search_stage_seconds"
    for name in STAGES:
        for query, searches in (("photo", 3), ("product", 1)):
            assert_sane_histogram(after, stage, stage=name, query=query)
            grew = value(after, stage, f"{stage}_count", stage=name, query=query) - value(
                before, stage, f"{stage}_count", stage=name, query=query
            )
            assert grew == searches, f"{name}/{query}: {grew} observations for {searches} searches"
    # The total is the slowest stage's upper bound: its sum is at least the embed stage's.
    assert value(after, stage, f"{stage}_sum", stage="total") >= value(
        after, stage, f"{stage}_sum", stage="embed"
    )

    http = "lookalike_http_request_duration_seconds"
    labels = {"endpoint": "search", "method": "POST", "status": "200"}
    assert_sane_histogram(after, http, **labels)
    assert value(after, http, f"{http}_count", **labels) - value(before, http, f"{http}_count", **labels) == 4
    counter = "lookalike_http_requests"
    assert (
        value(after, counter, f"{counter}_total", **labels)
        - value(before, counter, f"{counter}_total", **labels)
        == 4
    )

    version = str(active_model.version)
    embedded = "lookalike_images_embedded"
    query_labels = {"model_version": version, "purpose": "query"}
    grew = value(after, embedded, f"{embedded}_total", **query_labels) - value(
        before, embedded, f"{embedded}_total", **query_labels
    )
    assert grew == 3, "one image embedded per photo search, none for a product search"
    assert value(after, embedded, f"{embedded}_total", model_version=version, purpose="index") >= 3
    assert assert_sane_histogram(after, "lookalike_embed_call_seconds", **query_labels) >= 3


def test_indexing_counts_the_images_it_embeds(
    client, active_model, media_root, django_capture_on_commit_callbacks
) -> None:
    name = "lookalike_images_embedded"
    labels = {"model_version": str(active_model.version), "purpose": "index"}
    before = value(scrape(client), name, f"{name}_total", **labels)
    product = services.product_create(sku="EMB-1", title="Embedded twice")
    with django_capture_on_commit_callbacks(execute=True):
        services.product_image_add(product=product, data=image_bytes(color=(10, 200, 200), pattern=4))
        services.product_image_add(product=product, data=image_bytes(color=(200, 10, 200), pattern=5))
    assert set(product.images.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}
    assert value(scrape(client), name, f"{name}_total", **labels) - before == 2


def test_index_gauges_match_the_database(client, indexed_catalog, active_model, media_root) -> None:
    products, _ = indexed_catalog
    # Uploads whose indexing never ran (their on-commit callbacks are not executed here): pending.
    waiting = [
        services.product_image_add(product=products["RED-1"], data=image_bytes(pattern=n)).image
        for n in (11, 12, 13)
    ]
    ProductImage.objects.filter(pk=waiting[0].pk).update(index_status=IndexStatus.FAILED)
    ProductImage.objects.filter(pk=waiting[1].pk).update(updated_at=timezone.now() - timedelta(seconds=120))
    reindex = {"model_version": active_model.version, "status": ReindexStatus.RUNNING}
    Job.objects.create(
        kind="reindex", state=JobState.RUNNING, result={**reindex, "total": 10, "indexed": 4, "failed": 1}
    )

    families = scrape(client)
    db = {
        s: ProductImage.objects.filter(index_status=s).count()
        for s in (IndexStatus.PENDING, IndexStatus.FAILED)
    }
    assert db == {IndexStatus.PENDING: 2, IndexStatus.FAILED: 1}
    assert value(families, "lookalike_index_images", status="pending") == db[IndexStatus.PENDING]
    assert value(families, "lookalike_index_images", status="failed") == db[IndexStatus.FAILED]
    assert 119 <= value(families, "lookalike_index_lag_seconds") <= 180
    assert value(families, "lookalike_active_model_version") == active_model.version
    (info,) = samples(families, "lookalike_active_model_info", "lookalike_active_model_info")
    assert info.value == 1
    assert info.labels["version"] == str(active_model.version) and info.labels["kind"] == active_model.kind
    version = str(active_model.version)
    assert value(families, "lookalike_reindex_images", model_version=version, state="done") == 4
    assert value(families, "lookalike_reindex_images", model_version=version, state="total") == 10
    assert value(families, "lookalike_scrape_collector_up", collector="collect_index_backlog") == 1

    ProductImage.objects.filter(index_status=IndexStatus.PENDING).update(index_status=IndexStatus.INDEXED)
    active_model.status = "retired"
    active_model.save(update_fields=["status"])
    families = scrape(client)
    assert value(families, "lookalike_index_images", status="pending") == 0
    assert value(families, "lookalike_index_lag_seconds") == 0
    assert value(families, "lookalike_active_model_version") == 0
    assert samples(families, "lookalike_active_model_info", "lookalike_active_model_info") == []
