"""Compact pretrained vectors: the pretrained model made on a catalog with enough photos carries a
projection fitted on them (its collection has the compact dimension); below the minimum it stays raw;
later, an import queues the job that makes the compact model and moves the index to it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search.embedders import reset_embedders
from search.jobs.records import job_claim, job_submit
from search.jobs.runner import job_run
from search.models import Job, JobState, ModelKind, ModelStatus, ModelVersion
from search.services import compact
from search.services.indexing import index_pending_images
from search.services.model_versions import bootstrap_model_ensure
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes

DIM = 8


@pytest.fixture
def pretrained(settings, tmp_path, vector_store_path, media_root):
    """The real pretrained export, with random weights at 32 px; compact vectors from 12 photos."""
    settings.BACKBONE_WEIGHTS = "none"
    settings.BOOTSTRAP_BACKBONE = "mobilenet_v2_035"
    settings.BOOTSTRAP_IMAGE_SIZE = 32
    settings.BOOTSTRAP_COMPACT_DIM = DIM
    settings.BOOTSTRAP_COMPACT_MIN_PHOTOS = 12
    settings.BOOTSTRAP_COMPACT_MAX_PHOTOS = 30
    settings.MODELS_DIR = tmp_path / "models"
    reset_embedders()
    yield settings
    reset_embedders()


def _photos(count: int, per_product: int = 1) -> list[str]:
    ids = []
    for n in range(count):
        if n % per_product == 0:
            product = services.product_create(sku=f"P{n:03d}", title=f"product {n}")
        data = image_bytes(color=(25 * n % 250, 90, 160), pattern=n % 9 + 1)
        ids.append(str(services.product_image_add(product=product, data=data, announce=False).image.pk))
    return ids


def _stored_dim(model: ModelVersion, image_id: str) -> int:
    vector, _ = vector_store().retrieve(model.collection, [image_id], with_vectors=True)[image_id]
    return len(vector)


@pytest.mark.django_db(transaction=True)
def test_a_catalog_with_enough_photos_gets_a_compact_pretrained_model(pretrained) -> None:
    # Store photos, several per product: whitening learned from the pairs (bench/compact.py).
    ids = _photos(14, per_product=2)
    model = bootstrap_model_ensure().model
    assert (model.kind, model.status, model.embedding_dim) == (ModelKind.BOOTSTRAP, ModelStatus.ACTIVE, DIM)
    fit = model.config["compact"]
    assert (fit["in_dim"], fit["out_dim"], fit["samples"], fit["centered"]) == (1280, DIM, 14, True)
    assert (fit["method"], fit["pairs"], fit["paired_products"]) == ("whitening", 7, 7)
    assert fit["ridge"] == compact.WHITEN_RIDGE
    assert 0 < fit["explained"] <= 1 and fit["fit_s"] >= 0
    index_pending_images(ids)
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}
    assert _stored_dim(model, ids[0]) == DIM


@pytest.mark.django_db(transaction=True)
def test_a_catalog_mostly_of_one_photo_products_keeps_pca(pretrained) -> None:
    # 3 products with 2 photos and 8 with one: too few pairs to whiten without costing the one-photo
    # products (search/services/compact.py::WHITEN_MIN_PAIRED_SHARE), so PCA, centred as before.
    for n in range(11):
        product = services.product_create(sku=f"M{n:03d}", title=f"mixed {n}")
        for k in range(2 if n < 3 else 1):
            data = image_bytes(color=(20 * n, 40 * k, 160), pattern=(n + k) % 9 + 1)
            services.product_image_add(product=product, data=data, announce=False)
    fit = bootstrap_model_ensure().model.config["compact"]
    assert (fit["method"], fit["samples"], fit["centered"]) == ("pca", 14, False)
    assert "pairs" not in fit


@pytest.mark.django_db(transaction=True)
def test_below_the_minimum_the_pretrained_model_stays_raw(pretrained) -> None:
    ids = _photos(5)
    model = bootstrap_model_ensure().model
    assert model.embedding_dim == 1280 and "compact" not in model.config
    index_pending_images(ids[:1])
    assert _stored_dim(model, ids[0]) == 1280


@pytest.mark.django_db(transaction=True)
def test_compact_vectors_can_be_turned_off(pretrained) -> None:
    pretrained.BOOTSTRAP_COMPACT_DIM = 0
    _photos(14)
    assert bootstrap_model_ensure().model.embedding_dim == 1280


@pytest.mark.django_db(transaction=True)
def test_an_import_queues_the_compact_model_which_a_reindex_promotes(pretrained, tmp_path) -> None:
    first = _photos(4)
    raw = bootstrap_model_ensure().model  # the first upload's model: too few photos to fit on
    assert raw.embedding_dim == 1280 and not compact.compact_due()
    index_pending_images(first)

    rows = []
    for n in range(10):
        (tmp_path / f"p{n}.jpg").write_bytes(image_bytes(color=(20 * n, 200 - 15 * n, 90), pattern=n % 9 + 1))
        rows.append(json.dumps({"sku": f"IMP{n}", "title": f"imported {n}", "images": [f"p{n}.jpg"]}))
    manifest = tmp_path / "catalog.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    imported = job_run(job_submit(kind="import", params={"manifest": str(manifest)}, claim=True))
    assert imported.state == JobState.SUCCEEDED, imported.error
    queued = Job.objects.get(kind="compact_pretrained")
    assert queued.state == JobState.QUEUED

    # What the job runner does with it: the candidate, then the ordinary reindex job it submits.
    made = job_run(job_claim(job_id=queued.pk))
    assert made.state == JobState.SUCCEEDED, made.error
    candidate = ModelVersion.objects.get(version=made.result["model_version"])
    fit = candidate.config["compact"]
    # One photo each: no pairs, so PCA as before, not centred.
    assert (candidate.embedding_dim, fit["method"], fit["samples"], fit["centered"]) == (
        DIM,
        "pca",
        14,
        False,
    )
    follow = Job.objects.get(pk=made.result["promote_job"])
    assert (follow.kind, follow.params["model"]) == ("reindex", candidate.version)
    reindexed = job_run(job_claim(job_id=follow.pk))
    assert reindexed.state == JobState.SUCCEEDED, reindexed.error
    assert reindexed.result["status"] in ("promoted", "rejected")  # the gate decides, as for any model
    if reindexed.result["status"] == "promoted":
        assert ModelVersion.objects.get(status=ModelStatus.ACTIVE).pk == candidate.pk
        assert _stored_dim(candidate, first[0]) == DIM
    assert not compact.compact_due()  # made once; a rejected one is not retried by every import
    assert np.isfinite(candidate.config["compact"]["explained"])
