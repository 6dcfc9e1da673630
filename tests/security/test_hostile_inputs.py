"""Every hostile file through every entry point: the upload API, the search API and import_catalog.

Each must get the verdict the corpus declares (accepted, or a 4xx with its code), never a 5xx, and
leave nothing behind when refused: no row, no unreferenced file under MEDIA_ROOT, no vector point.
The model and the vector store are real (tests/support/model_fixtures.py); nothing is mocked.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from catalog import services
from catalog.models import IndexStatus, Product, ProductImage
from search.vector_store import vector_store
from tests.fixtures.hostile import HOSTILE_MAX_UPLOAD_BYTES, Hostile, hostile_corpus

# Broken EXIF is part of the corpus; Pillow warning about it is the expected outcome.
pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")]

CORPUS = hostile_corpus()
BOUNDARY = "hostile-boundary-7f3a9c"


@pytest.fixture(autouse=True)
def _hostile_limits(settings, media_root) -> None:
    # A small byte cap keeps the "over the cap" entry small; every other entry is far below it.
    settings.MAX_UPLOAD_BYTES = HOSTILE_MAX_UPLOAD_BYTES


def _multipart(entry: Hostile, **fields: str) -> tuple[bytes, str]:
    """A multipart body written by hand: the test client cannot send a non-UTF-8 file name."""
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    parts.append(
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="image"; filename="'
        + entry.filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + entry.data
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={BOUNDARY}"


def _points(model) -> int:
    return vector_store().count(model.collection)


def _assert_no_orphans() -> None:
    """Every file under MEDIA_ROOT is referenced by a row, and every row's file exists."""
    root = Path(django_settings.MEDIA_ROOT)
    on_disk = (
        {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    )
    referenced = set(ProductImage.objects.values_list("file", flat=True))
    assert on_disk == referenced, f"orphans: {on_disk - referenced}; missing: {referenced - on_disk}"


def _assert_error(response, entry: Hostile) -> None:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    error = response.json()["error"]
    assert error["code"] == entry.api_code, error
    if entry.api_code == "invalid_image":
        # The precise reason travels in the message, so a client can tell a bomb from a typo.
        assert f"({entry.code})" in error["message"], error


# One test per entry point with a subtest per file: the real model and vector store are set up three
# times instead of once per file (about 1 s each), and a failure still names the file.


def test_upload_api(auth_client, active_model, django_capture_on_commit_callbacks, subtests) -> None:  # noqa: F811
    for number, entry in enumerate(CORPUS):
        with subtests.test(msg=entry.id):
            product = services.product_create(sku=f"H-{number:03d}", title=entry.id)
            points_before = _points(active_model)
            body, content_type = _multipart(entry)
            # Run the after-commit indexing task too: an odd image accepted here must also survive
            # the worker, or it would sit "failed" in the catalog forever.
            with django_capture_on_commit_callbacks(execute=True):
                response = auth_client.generic(
                    "POST", f"/api/v1/products/{product.pk}/images/", body, content_type=content_type
                )
            assert response.status_code == entry.upload_status, (entry.why, response.content[:300])
            images = ProductImage.objects.filter(product=product)
            if entry.accepted_over_http:
                data = response.json()
                assert (data["format"], data["width"], data["height"]) == (entry.format, *entry.size)
                image = images.get()
                # The client's name is kept as text for people, never as a path.
                assert "/" not in image.original_name and "\\" not in image.original_name
                assert len(image.original_name) <= 255
                assert image.file.name.startswith(f"images/{image.sha256[:2]}/")
                assert image.index_status == IndexStatus.INDEXED, image.last_error
                assert _points(active_model) == points_before + 1
            else:
                _assert_error(response, entry)
                assert not images.exists()
                assert _points(active_model) == points_before
            _assert_no_orphans()


def test_search_api(api_client, active_model, subtests) -> None:  # noqa: F811
    for entry in CORPUS:
        with subtests.test(msg=entry.id):
            body, content_type = _multipart(entry, limit="5")
            response = api_client.generic("POST", "/api/v1/search/", body, content_type=content_type)
            assert response.status_code == entry.search_status, (entry.why, response.content[:300])
            if entry.accepted_over_http:
                assert response.json()["model_version"] == active_model.version
            else:
                _assert_error(response, entry)
    # A search never writes: no row, no file, no point.
    assert _points(active_model) == 0
    assert not ProductImage.objects.exists()
    _assert_no_orphans()


def test_import_catalog(tmp_path: Path, active_model, django_capture_on_commit_callbacks) -> None:  # noqa: F811
    """One manifest line per corpus file; each line is reported with the file's own code."""
    lines = []
    for number, entry in enumerate(CORPUS):
        folder = tmp_path / "files" / str(number)  # a folder each: names may repeat across entries
        folder.mkdir(parents=True)
        # Written by bytes so the non-UTF-8 name lands on disk exactly as a user's camera made it.
        Path(folder, entry.disk_name).write_bytes(entry.data)
        rel = f"files/{number}/{entry.disk_name}"
        # json.dumps escapes the surrogates of a non-UTF-8 name; json.loads gives them back and the
        # OS encodes them to the original bytes, so the manifest can name any file on disk.
        lines.append(json.dumps({"sku": f"H-{number:03d}", "title": entry.id, "images": [rel]}))
    manifest = tmp_path / "catalog.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="ascii")

    points_before = _points(active_model)
    out, err = StringIO(), StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_catalog", str(manifest), stdout=out, stderr=err)

    reported: dict[str, str] = {}
    for line in err.getvalue().splitlines():
        # "line N (sku H-007): code: message"
        sku = line.split("(sku ", 1)[1].split(")", 1)[0]
        reported[sku] = line.split("): ", 1)[1].split(":", 1)[0]
    problems = []
    for number, entry in enumerate(CORPUS):
        sku = f"H-{number:03d}"
        got = reported.get(sku)
        if got != entry.code:
            problems.append(f"{entry.id}: reported {got!r}, expected {entry.code!r}")
        product = Product.objects.filter(sku=sku).first()
        if entry.accepted:
            image = ProductImage.objects.filter(product__sku=sku).first()
            if image is None or (image.format, image.width, image.height) != (entry.format, *entry.size):
                problems.append(
                    f"{entry.id}: stored as {image and (image.format, image.width, image.height)}"
                )
            elif image.index_status != IndexStatus.INDEXED:
                problems.append(f"{entry.id}: index status {image.index_status} ({image.last_error})")
        elif product is not None:  # a line is all-or-nothing: no product without its image
            problems.append(f"{entry.id}: product {sku} was created although its image was refused")
    assert not problems, "\n".join(problems)

    accepted = sum(1 for e in CORPUS if e.accepted)
    assert ProductImage.objects.count() == accepted
    assert _points(active_model) == points_before + accepted
    assert f"{accepted} created," in out.getvalue()
    assert f"{len(CORPUS) - accepted} error(s)" in out.getvalue()
    _assert_no_orphans()
