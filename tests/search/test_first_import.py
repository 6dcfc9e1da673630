"""Searchable from the first import: with no active model, the first indexing (an import's or an
upload's) exports and activates the pretrained model, once however many arrive together; an import
prints one summary, not a line per image."""

from __future__ import annotations

import json
import logging
import re
import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search.embedders import reset_embedders
from search.models import ModelKind, ModelStatus, ModelVersion
from search.services.indexing import index_pending_images
from tests.fixtures.images import image_bytes


@pytest.fixture
def auto_bootstrap(settings, tmp_path, vector_store_path, media_root):
    settings.AUTO_BOOTSTRAP_MODEL = True
    settings.BACKBONE_WEIGHTS = "none"  # random weights at 32 px: the real export, without a download
    settings.BOOTSTRAP_IMAGE_SIZE = 32
    settings.MODELS_DIR = tmp_path / "models"
    reset_embedders()  # the model made here is a new v1: no embedder an earlier test loaded for its v1
    yield settings.MODELS_DIR
    reset_embedders()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_first_uploads_make_one_model(auto_bootstrap) -> None:
    images = []
    for n in range(4):
        product = services.product_create(sku=f"P{n}", title=f"p{n}")
        image = services.product_image_add(product=product, data=image_bytes(pattern=n + 1), announce=False)
        images.append(str(image.image.pk))
    barrier = threading.Barrier(len(images))
    errors: list[BaseException] = []

    def index(image_id: str) -> None:
        try:
            barrier.wait()
            index_pending_images([image_id])
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=index, args=(i,)) for i in images]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    model = ModelVersion.objects.get()  # one export, not four
    assert (model.kind, model.status, model.image_size) == (ModelKind.BOOTSTRAP, ModelStatus.ACTIVE, 32)
    assert [p.name for p in (auto_bootstrap / "lookalike").iterdir() if p.name.isdigit()] == [
        str(model.version)
    ]
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}


def _manifest(tmp_path, count: int):
    rows = []
    for n in range(count):
        (tmp_path / f"p{n}.jpg").write_bytes(image_bytes(color=(10 * n % 250, 90, 160), pattern=n + 1))
        rows.append(json.dumps({"sku": f"P{n:03d}", "title": f"product {n}", "images": [f"p{n}.jpg"]}))
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.django_db(transaction=True)
def test_the_first_import_bootstraps_and_prints_one_summary(auto_bootstrap, tmp_path, api_client) -> None:
    out, err = StringIO(), StringIO()
    call_command("import_catalog", str(_manifest(tmp_path, 12)), stdout=out, stderr=err)
    # The import runs as a catalog sync of the file: one summary line, with the sync's counts.
    assert re.fullmatch(
        r"sync #\d+ done in [\d.]+ s: 12 product\(s\) read; 12 created, 0 updated, 0 unchanged, "
        r"0 reactivated, 0 removed; images 0 fetched, 12 added from files, 0 unchanged, 0 failed, "
        r"0 removed; 0 error\(s\)\. New images: 12 indexed, 0 pending, 0 failed\.",
        out.getvalue().strip().splitlines()[-1],
    )
    assert ModelVersion.objects.get().status == ModelStatus.ACTIVE
    product_id = ProductImage.objects.first().product_id
    assert api_client.post("/api/v1/search/", {"product_id": product_id}, format="json").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_an_import_that_cannot_index_yet_says_so_once(
    settings, vector_store_path, media_root, tmp_path, caplog
) -> None:
    # No model and no automatic one: each line's indexing task finds nothing to embed with. That used to
    # log a warning per line; the images carry the reason and the summary counts them.
    settings.AUTO_BOOTSTRAP_MODEL = False
    caplog.set_level(logging.DEBUG)
    out, err = StringIO(), StringIO()
    call_command("import_catalog", str(_manifest(tmp_path, 20)), stdout=out, stderr=err)
    assert out.getvalue().strip().splitlines()[-1].endswith("New images: 0 indexed, 20 pending, 0 failed.")
    assert err.getvalue() == ""
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "No active model" in ProductImage.objects.first().last_error


@pytest.mark.django_db(transaction=True)
def test_the_first_upload_makes_the_catalog_searchable(auto_bootstrap, auth_client, api_client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = auth_client.post("/api/v1/products/", {"sku": "LAMP", "title": "Lamp"}, format="json")
    product_id = response.json()["id"]
    photo = image_bytes(color=(240, 120, 10), pattern=7)
    upload = auth_client.post(
        f"/api/v1/products/{product_id}/images/",
        {"image": SimpleUploadedFile("lamp.jpg", photo)},
        format="multipart",
    )
    assert upload.status_code == 201, upload.content
    assert ModelVersion.objects.get().kind == ModelKind.BOOTSTRAP
    assert ProductImage.objects.get().index_status == IndexStatus.INDEXED
    found = api_client.post(
        "/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photo)}, format="multipart"
    )
    assert found.status_code == 200 and found.json()["results"][0]["product"]["sku"] == "LAMP"
