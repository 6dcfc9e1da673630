"""Zero-downtime reindex, the evaluation gate, rollback and reconciliation, on the real stores."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search.models import Job, ModelStatus, ReindexStatus
from search.selectors import active_model as get_active
from search.services import reindex
from search.services.reconcile import reconcile
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes
from tests.search.conftest import CANDIDATE_VERSION
from tests.support.reindex import reindex_start

pytestmark = pytest.mark.django_db


def _all_ids() -> list[str]:
    return sorted(str(pk) for pk in ProductImage.objects.values_list("pk", flat=True))


def test_reindex_keeps_answering_and_dual_writes(
    api_client, indexed_catalog, active_model, candidate, django_capture_on_commit_callbacks
) -> None:
    products, photos = indexed_catalog
    seen_versions, uploaded = [], []

    def during_fill(job) -> None:
        # Mid-job: searches answer from the active model, and a new upload lands in both collections.
        response = api_client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photos["RED-1"])})
        assert response.status_code == 200
        seen_versions.append(response.json()["model_version"])
        if not uploaded:
            with django_capture_on_commit_callbacks(execute=True):
                image = services.product_image_add(
                    product=products["GRN-1"], data=image_bytes(color=(30, 190, 60), pattern=42)
                ).image
            uploaded.append(str(image.pk))

    reindex.BATCH = 2  # several batches even for a tiny catalog
    try:
        job = reindex_start(candidate, force=True)
        store = vector_store()
        job = reindex.reindex_fill(job, on_batch=during_fill)
    finally:
        reindex.BATCH = 64
    assert seen_versions and set(seen_versions) == {active_model.version}
    assert store.retrieve(active_model.collection, uploaded)  # the upload reached the live collection too
    assert job.result["status"] == ReindexStatus.PROMOTED
    assert get_active().version == CANDIDATE_VERSION
    ids = _all_ids()
    assert store.count(candidate.collection) == len(ids) == 4
    assert sorted(store.retrieve(candidate.collection, ids)) == ids
    assert set(ProductImage.objects.values_list("indexed_model_version", flat=True)) == {
        str(CANDIDATE_VERSION)
    }
    response = api_client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photos["RED-1"])})
    assert response.json()["model_version"] == CANDIDATE_VERSION
    # The exact photo is found at cosine 1 (this random candidate may tie other products there).
    scores = {r["product"]["sku"]: r["score"] for r in response.json()["results"]}
    assert scores["RED-1"] == pytest.approx(1.0, abs=1e-4) == max(scores.values())
    active_model.refresh_from_db()
    assert active_model.status == ModelStatus.RETIRED
    assert store.collection_exists(active_model.collection)  # kept for rollback


def test_rollback_restores_the_previous_model_and_fills_its_gaps(
    indexed_catalog, active_model, candidate, django_capture_on_commit_callbacks
) -> None:
    products, _ = indexed_catalog
    reindex.reindex_fill(reindex_start(candidate, force=True))
    with django_capture_on_commit_callbacks(execute=True):
        new = services.product_image_add(product=products["BLU-1"], data=image_bytes(color=(0, 0, 150))).image
    store = vector_store()
    assert not store.retrieve(active_model.collection, [str(new.pk)])  # uploaded after the switch
    with django_capture_on_commit_callbacks(execute=True):
        out = StringIO()
        call_command("rollback", stdout=out)
    assert f"Active model is v{active_model.version} again" in out.getvalue()
    assert get_active().pk == active_model.pk
    assert store.retrieve(active_model.collection, [str(new.pk)])
    assert store.count(active_model.collection) == ProductImage.objects.count()


def _unit(v) -> list[float]:
    v = np.asarray(v, np.float32)
    return (v / np.linalg.norm(v)).tolist()


def test_gate_rejects_a_worse_candidate_unless_forced(active_model, candidate, indexed_catalog) -> None:
    products, _ = indexed_catalog
    for n, product in enumerate(products.values()):  # a second photo each, so held-out photos have a match
        services.product_image_add(product=product, data=image_bytes(color=(90, 90, 90), pattern=100 + n))
    images = list(ProductImage.objects.order_by("product_id", "display_order"))
    product_ids = sorted({i.product_id for i in images})
    store = vector_store()
    # Written straight into both collections: the active model separates products cleanly, the
    # candidate puts every product's first photo on one direction and second photo on another.
    for model, good in ((active_model, True), (candidate, False)):
        dim = model.embedding_dim
        points = []
        for image in images:
            n = product_ids.index(image.product_id)
            direction = np.eye(dim)[n] if good else np.eye(dim)[image.display_order % 2]
            direction = direction + 0.001 * (n + 1) * np.ones(dim)
            payload = {
                "product_id": image.product_id,
                "sku": "x",
                "category": "c",
                "price": 1.0,
                "in_stock": True,
                "model_version": str(model.version),
            }
            points.append((str(image.pk), _unit(direction), payload))
        store.ensure_collection(model.collection, dim)
        store.upsert(model.collection, points)
    candidate.eval_image_ids = [str(i.pk) for i in images if i.display_order == 0]
    candidate.save()

    job = reindex_start(candidate)
    rejected = reindex.gate_and_promote(job).result
    assert rejected["status"] == ReindexStatus.REJECTED
    assert rejected["gate"]["passed"] is False
    assert rejected["gate"]["active"]["recall@1"] == 1.0 and rejected["gate"]["candidate"]["recall@1"] < 1.0
    assert Job.objects.get(pk=job.pk).result == job.result  # the state is on the job's row
    assert get_active().pk == active_model.pk
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.REJECTED

    forced = reindex_start(candidate, force=True)  # the rejected one is no longer in progress
    assert reindex.gate_and_promote(forced).result["status"] == ReindexStatus.PROMOTED
    assert get_active().pk == candidate.pk


def test_reconcile_repairs_changes_made_behind_the_platforms_back(indexed_catalog, active_model) -> None:
    products, _ = indexed_catalog
    store = vector_store()
    ids = _all_ids()
    green, blue = (str(products[sku].images.get().pk) for sku in ("GRN-1", "BLU-1"))
    store.delete(active_model.collection, [green])  # a point lost
    orphan = "0b5d1f3e-7c2a-4f61-9a4e-2d8c6b1e0f37"
    vector = store.retrieve(active_model.collection, [blue], with_vectors=True)[blue][0]
    store.upsert(
        active_model.collection,
        [
            (
                orphan,
                vector,
                {
                    "product_id": 999999,
                    "sku": "ghost",
                    "category": "",
                    "price": None,
                    "in_stock": True,
                    "model_version": "7",
                },
            )
        ],
    )
    store.set_payload_by_product(active_model.collection, products["RED-1"].pk, {"price": 1234.0})

    dry = reconcile(dry_run=True)[0]
    assert (dry.missing, dry.orphans, dry.stale_payloads) == (1, 1, 1)
    out = StringIO()
    call_command("reconcile_index", stdout=out)
    assert "missing 1 (re-indexed 1), orphans 1 removed, stale payloads 1 fixed" in out.getvalue()
    assert sorted(store.retrieve(active_model.collection, ids + [orphan])) == ids
    payload = store.retrieve(active_model.collection, [str(products["RED-1"].images.get().pk)])
    assert next(iter(payload.values()))[1]["price"] == 5.0
    again = reconcile()[0]
    assert (again.missing, again.orphans, again.stale_payloads) == (0, 0, 0)
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}


def test_reindex_refuses_without_a_candidate(active_model) -> None:
    with pytest.raises(reindex.ReindexError, match="No candidate model"):
        reindex_start()


def test_with_one_photo_per_product_the_gate_compares_augmented_views(
    active_model, candidate, indexed_catalog
) -> None:
    # indexed_catalog has one photo of each product: no held-out photo has another of its product.
    reindex.reindex_fill(reindex_start(candidate, force=True))
    from search.services import gate

    labels = {str(pk): pid for pk, pid in ProductImage.objects.values_list("pk", "product_id")}
    verdict = gate.evaluate(candidate, active_model, labels)
    assert verdict["candidate"]["queries"] == "augmented views" == verdict["active"]["queries"]
    assert verdict["candidate"]["num_queries"] == verdict["active"]["num_queries"] == 3
    assert 0.0 <= verdict["candidate"]["recall@1"] <= 1.0
    # Views do not predict shoppers' photos: never an automatic promotion, whatever the figures.
    assert verdict["passed"] is False and "promote by hand" in verdict["advice_only"]
