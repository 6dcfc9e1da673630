"""``import_catalog``: the JSON Lines manifest through the one sync path (``sync_catalog --format jsonl``).

Each product line is all-or-nothing for its local files (a bad file refuses the line: no product, no
file kept); local paths are confined to the manifest's folder; re-running a manifest changes nothing.
"""

from __future__ import annotations

import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product, ProductImage, SyncRun
from tests.fixtures.images import image_bytes, png_header_with_size, truncated_jpeg

pytestmark = pytest.mark.django_db


def _write_manifest(folder: Path, rows: list) -> Path:
    manifest = folder / "catalog.jsonl"
    with manifest.open("w") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return manifest


@pytest.fixture
def hostile_manifest(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    (tmp_path / "img/good1.jpg").write_bytes(image_bytes(pattern=1))
    (tmp_path / "img/good2.png").write_bytes(image_bytes(fmt="PNG", pattern=2))
    (tmp_path / "img/truncated.jpg").write_bytes(truncated_jpeg())
    (tmp_path / "img/text.jpg").write_bytes(b"this is a text file pretending to be a JPEG\n")
    (tmp_path / "img/huge.png").write_bytes(png_header_with_size(20000, 20000))
    return _write_manifest(
        tmp_path,
        [
            {
                "sku": "OK-1",
                "title": "Good one",
                "price": "3.50",
                "category": "fruit",
                "images": ["img/good1.jpg"],
            },
            {"sku": "BAD-TRUNC", "title": "x", "images": ["img/good2.png", "img/truncated.jpg"]},
            {"sku": "BAD-TEXT", "title": "x", "images": ["img/text.jpg"]},
            {"sku": "BAD-HUGE", "title": "x", "images": ["img/huge.png"]},
            {"sku": "BAD-MISSING", "title": "x", "images": ["img/nope.jpg"]},
            "{not json",
            {"sku": "OK-2", "title": "Good two", "images": ["img/good2.png", "img/good1.jpg"]},
        ],
    )


def _run(manifest: Path) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_catalog", str(manifest), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_reports_each_bad_line_and_imports_the_rest(hostile_manifest, media_root) -> None:
    out, err = _run(hostile_manifest)
    assert sorted(Product.objects.values_list("sku", flat=True)) == ["OK-1", "OK-2"]
    assert ProductImage.objects.count() == 3
    lines = err.strip().splitlines()
    assert lines[0] == (
        "line 2 (sku BAD-TRUNC): corrupt_image: img/truncated.jpg: "
        "The image file is damaged or truncated and cannot be decoded."
    )
    assert lines[1].startswith("line 3 (sku BAD-TEXT): unsupported_format: img/text.jpg: ")
    assert lines[2].startswith("line 4 (sku BAD-HUGE): too_many_pixels: img/huge.png:")
    assert lines[3] == "line 5 (sku BAD-MISSING): missing_file: img/nope.jpg: no such file."
    assert lines[4].startswith("line 6: invalid_json:")
    assert len(lines) == 5
    assert "2 product(s) read; 2 created" in out and "3 added from files" in out and "5 error(s)" in out
    # No orphans: every stored file belongs to a row, and the refused line's good image was not kept.
    stored = {str(p.relative_to(media_root)) for p in (media_root / "images").rglob("*") if p.is_file()}
    assert stored == set(ProductImage.objects.values_list("file", flat=True))
    assert len(stored) == 2  # good1 and good2, shared between OK-1 and OK-2
    run = SyncRun.objects.get()
    assert (run.state, run.format, run.origin, run.error_count) == ("done", "jsonl", "command", 5)


def test_reimport_is_a_no_op(hostile_manifest, media_root) -> None:
    _run(hostile_manifest)
    before = list(ProductImage.objects.order_by("pk").values_list("pk", "sha256", "updated_at"))
    out, _ = _run(hostile_manifest)
    assert list(ProductImage.objects.order_by("pk").values_list("pk", "sha256", "updated_at")) == before
    assert "0 created, 0 updated, 2 unchanged" in out
    assert "0 added from files, 3 unchanged" in out


def test_reimport_updates_changed_fields(tmp_path, media_root) -> None:
    (tmp_path / "a.jpg").write_bytes(image_bytes())
    _run(_write_manifest(tmp_path, [{"sku": "A", "title": "a", "price": "1", "images": ["a.jpg"]}]))
    out, _ = _run(_write_manifest(tmp_path, [{"sku": "A", "title": "a", "price": "2", "images": ["a.jpg"]}]))
    assert str(Product.objects.get().price) == "2.00"
    assert "1 updated" in out


def test_local_paths_stay_inside_the_manifests_folder(tmp_path, media_root) -> None:
    shop = tmp_path / "shop"
    (shop / "img").mkdir(parents=True)
    secret = tmp_path / "outside.jpg"  # a valid image, so only the path rule can refuse it
    secret.write_bytes(image_bytes(pattern=5))
    os.symlink(secret, shop / "img" / "link.jpg")
    (shop / "img" / "ok.jpg").write_bytes(image_bytes(pattern=6))
    manifest = _write_manifest(
        shop,
        [
            {"sku": "UP", "title": "x", "images": ["../outside.jpg"]},
            {"sku": "UP2", "title": "x", "images": ["img/../../outside.jpg"]},
            {"sku": "ABS", "title": "x", "images": [str(secret)]},
            {"sku": "LINK", "title": "x", "images": ["img/link.jpg"]},
            {"sku": "OK", "title": "x", "images": ["img/ok.jpg"]},
        ],
    )
    _, err = _run(manifest)
    codes = {
        line.split("(sku ")[1].split(")")[0]: line.split("): ")[1].split(":")[0] for line in err.splitlines()
    }
    assert codes == {
        "UP": "parent_segment",
        "UP2": "parent_segment",
        "ABS": "absolute_path",
        "LINK": "outside_base",
    }
    assert list(Product.objects.values_list("sku", flat=True)) == ["OK"]
    assert ProductImage.objects.get().original_name == "ok.jpg"


def test_missing_manifest_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(CommandError, match="Manifest not found"):
        call_command("import_catalog", str(tmp_path / "nope.jsonl"))
