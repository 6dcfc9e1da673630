from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product, ProductImage
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
    assert lines == [
        "line 2 (sku BAD-TRUNC): corrupt_image: img/truncated.jpg: The image file is damaged or truncated and cannot be decoded.",
        f"line 3 (sku BAD-TEXT): unsupported_format: img/text.jpg: {lines[1].split(': ', 3)[3]}",
        lines[2],
        "line 5 (sku BAD-MISSING): missing_file: img/nope.jpg: no such file.",
        lines[4],
    ]
    assert lines[2].startswith("line 4 (sku BAD-HUGE): too_many_pixels: img/huge.png:")
    assert lines[4].startswith("line 6: invalid_json:")
    assert "7 line(s): 2 imported, 5 rejected" in out
    # No orphans: every stored file belongs to a row, and the bad line's good image was not kept.
    stored = {str(p.relative_to(media_root)) for p in (media_root / "images").rglob("*") if p.is_file()}
    assert stored == set(ProductImage.objects.values_list("file", flat=True))
    assert len(stored) == 2  # good1 and good2, shared between OK-1 and OK-2


def test_reimport_is_a_no_op(hostile_manifest, media_root) -> None:
    _run(hostile_manifest)
    before = (Product.objects.count(), ProductImage.objects.count())
    out, _ = _run(hostile_manifest)
    assert (Product.objects.count(), ProductImage.objects.count()) == before
    assert "products 0 created, 0 updated, 2 unchanged; images 0 added, 3 already present" in out


def test_reimport_updates_changed_fields(tmp_path, media_root) -> None:
    (tmp_path / "a.jpg").write_bytes(image_bytes())
    _run(_write_manifest(tmp_path, [{"sku": "A", "title": "a", "price": "1", "images": ["a.jpg"]}]))
    out, _ = _run(_write_manifest(tmp_path, [{"sku": "A", "title": "a", "price": "2", "images": ["a.jpg"]}]))
    assert str(Product.objects.get().price) == "2.00"
    assert "1 updated" in out


def test_missing_manifest_is_a_one_line_error(tmp_path) -> None:
    with pytest.raises(CommandError, match="Manifest not found"):
        call_command("import_catalog", str(tmp_path / "nope.jsonl"))
