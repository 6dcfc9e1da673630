"""Backup and restore drill on a small catalog: the real exported model, the real embedded store, the
real database. Back up, restore into an empty install (fresh database, media, models and vector
store), and the same queries get the same top 10."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog import services
from catalog.models import IndexStatus, Product, ProductImage
from search import vector_store as store_handle
from search.embedders import reset_embedders
from search.models import ModelVersion
from search.selectors import forget_active_model
from search.services.backup.archive import MANIFEST
from search.services.text_index import TEXT_COLLECTION
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)

COLOURS = [(220, 20, 20), (20, 200, 40), (20, 40, 220), (230, 200, 30), (140, 40, 160), (30, 180, 190)]


@pytest.fixture
def small_catalog(active_model):
    """12 products, 18 images, indexed through the real upload path (tasks run in-process)."""
    for n in range(12):
        product = services.product_create(
            sku=f"SKU-{n}",
            title=f"Product {n}",
            category="kitchen" if n % 2 else "garden",
            price=f"{n + 1}.00",
        )
        colour = COLOURS[n % len(COLOURS)]
        services.product_image_add(product=product, data=image_bytes(color=colour, size=(64, 64), pattern=n))
        if n % 2:
            services.product_image_add(
                product=product, data=image_bytes(color=colour, size=(64, 64), pattern=50 + n)
            )
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.INDEXED}
    return active_model


def _queries() -> list[bytes]:
    return [image_bytes(color=COLOURS[q % len(COLOURS)], size=(64, 64), pattern=100 + q) for q in range(10)]


def _top10(client) -> list[list[tuple[str, int, float]]]:
    answers = []
    for data in _queries():
        photo = SimpleUploadedFile("q.jpg", data, content_type="image/jpeg")
        response = client.post("/api/v1/search/", {"image": photo, "limit": 10}, format="multipart")
        assert response.status_code == 200, response.content
        answers.append([(r["image_id"], r["product"]["id"], r["score"]) for r in response.json()["results"]])
    return answers


def _empty_install(settings, root: Path) -> None:
    """What a new machine has: a migrated, empty database and no media, models or vectors."""
    call_command("flush", interactive=False, verbosity=0)
    store_handle.reset_vector_store()
    reset_embedders()
    forget_active_model()
    settings.MEDIA_ROOT = root / "media"
    settings.MODELS_DIR = root / "models"
    settings.VECTOR_STORE_PATH = root / "qdrant"
    settings.SEARCH_LOG_PHOTOS_DIR = root / "search-photos"


def _backup(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "drill.tar"
    call_command("backup", "--out", str(out), *extra, stdout=io.StringIO())
    return out


def test_restore_into_an_empty_install_answers_the_same_top_10(
    small_catalog, api_client, settings, tmp_path
) -> None:
    before = _top10(api_client)
    assert all(len(hits) == 10 for hits in before)
    archive = _backup(tmp_path)
    products = Product.objects.count()

    _empty_install(settings, tmp_path / "fresh")
    assert not ModelVersion.objects.exists()
    out = io.StringIO()
    call_command("restore", str(archive), stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("Restored drill.tar") and "from the snapshot" in lines[-1]
    assert any(line.startswith("database:") for line in lines)
    assert Product.objects.count() == products
    model = ModelVersion.objects.get(status="active")
    # The model came out of the archive, into this install's MODELS_DIR.
    assert Path(model.export_path).is_relative_to(tmp_path / "fresh" / "models")
    assert all(
        Path(i.file.path).is_relative_to(tmp_path / "fresh" / "media") for i in ProductImage.objects.all()
    )
    after = _top10(api_client)
    assert [[(i, p) for i, p, _ in hits] for hits in after] == [
        [(i, p) for i, p, _ in hits] for hits in before
    ]
    for hits_before, hits_after in zip(before, after, strict=True):
        assert [s for *_, s in hits_after] == pytest.approx([s for *_, s in hits_before], abs=1e-6)
    # The text index is not archived: it is written again from the restored catalog.
    assert any(line.startswith("text index: 12 product(s) written") for line in lines)
    assert _words(api_client, "product 7") == "SKU-7"


def test_recipe_only_backup_rebuilds_the_vectors(small_catalog, api_client, settings, tmp_path) -> None:
    before = _top10(api_client)
    archive = _backup(tmp_path, "--vectors", "recipe")
    with tarfile.open(archive) as tar:
        assert not [n for n in tar.getnames() if n.startswith("vectors/")]

    _empty_install(settings, tmp_path / "fresh")
    out = io.StringIO()
    call_command("restore", str(archive), stdout=out)

    assert "rebuilt from the recipe" in out.getvalue().splitlines()[-1]
    after = _top10(api_client)
    assert [[(i, p) for i, p, _ in hits] for hits in after] == [
        [(i, p) for i, p, _ in hits] for hits in before
    ]


def _refusal(archive: Path, *extra: str) -> str:
    with pytest.raises(CommandError) as raised:
        call_command("restore", str(archive), *extra, stdout=io.StringIO())
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_corrupt_archive_is_refused_before_anything_is_written(small_catalog, settings, tmp_path) -> None:
    archive = _backup(tmp_path)
    with tarfile.open(archive) as tar:
        dump = tar.getmember("database.json.gz")
    data = bytearray(archive.read_bytes())
    data[dump.offset_data + dump.size // 2] ^= 0xFF  # one bit pattern inside the database dump
    archive.write_bytes(bytes(data))
    _empty_install(settings, tmp_path / "fresh")

    assert "is corrupt" in _refusal(archive)
    assert not Product.objects.exists()
    assert not (tmp_path / "fresh" / "media").exists()

    archive.write_bytes(bytes(data[: len(data) // 2]))  # cut short
    assert "is corrupt" in _refusal(archive)


def _rewritten(archive: Path, edit, edit_dump=None) -> Path:
    """The archive with its manifest changed by ``edit`` and, with ``edit_dump``, its database rows too
    (that member's checksum is then written anew, as the release that made it would have)."""
    out = archive.with_name("edited.tar")
    with tarfile.open(archive) as src:
        members = [(info, src.extractfile(info).read()) for info in src]
    bodies = dict((info.name, body) for info, body in members)
    if edit_dump is not None:
        rows = json.loads(gzip.decompress(bodies["database.json.gz"]))
        bodies["database.json.gz"] = gzip.compress(json.dumps(edit_dump(rows)).encode())
    manifest = json.loads(bodies[MANIFEST])
    edit(manifest)
    dump = bodies["database.json.gz"]
    manifest["members"]["database.json.gz"] = {"size": len(dump), "sha256": hashlib.sha256(dump).hexdigest()}
    bodies[MANIFEST] = json.dumps(manifest).encode()
    with tarfile.open(out, "w") as dst:
        for info, _ in members:
            info.size = len(bodies[info.name])
            dst.addfile(info, io.BytesIO(bodies[info.name]))
    return out


def test_an_archive_from_a_newer_schema_is_refused(small_catalog, settings, tmp_path) -> None:
    archive = _backup(tmp_path)
    newer = _rewritten(
        archive, lambda m: m["database"]["migrations"]["catalog"].append("9999_from_the_future")
    )
    _empty_install(settings, tmp_path / "fresh")

    message = _refusal(newer)
    assert "newer than this Lookalike" in message and "9999_from_the_future" in message
    assert not Product.objects.exists()
    future = _rewritten(archive, lambda m: m.update(format_version=99))
    assert "newer than this Lookalike reads" in _refusal(future)


def _words(client, q: str) -> str | None:
    response = client.post("/api/v1/search/", {"q": q, "limit": 1}, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    return results[0]["product"]["sku"] if results else None


def test_a_non_empty_install_is_refused_unless_replace(small_catalog, api_client, tmp_path) -> None:
    before = _top10(api_client)
    archive = _backup(tmp_path)
    Product.objects.filter(sku="SKU-0").update(title="edited after the backup")
    # A product made after the backup, with words of its own in the text index, reusing no id.
    services.product_image_add(
        product=services.product_create(sku="NEW-1", title="Zebra blanket"),
        data=image_bytes(color=(1, 2, 3), size=(64, 64)),
    )
    assert _words(api_client, "zebra") == "NEW-1"

    assert "this install is not empty" in _refusal(archive)
    assert Product.objects.get(sku="SKU-0").title == "edited after the backup"

    call_command("restore", str(archive), "--replace", stdout=io.StringIO())
    assert Product.objects.get(sku="SKU-0").title == "Product 0"
    # The replaced install's text index went with it: the restored catalog's products only.
    assert _words(api_client, "zebra") is None
    assert store_handle.vector_store().count(TEXT_COLLECTION) == 12
    after = _top10(api_client)
    assert [[(i, p) for i, p, _ in hits] for hits in after] == [
        [(i, p) for i, p, _ in hits] for hits in before
    ]


def test_backup_never_overwrites(small_catalog, tmp_path) -> None:
    archive = _backup(tmp_path)
    with pytest.raises(CommandError, match="exists already"):
        _backup(tmp_path)
    assert archive.is_file() and not list(tmp_path.glob("*.partial"))


def test_an_archive_from_before_a_new_field_loads_with_its_default(
    small_catalog, api_client, settings, tmp_path
) -> None:
    # What the release before search 0006 (ModelVersion.index) wrote: no such migration, no such field.
    before = _top10(api_client)
    archive = _backup(tmp_path)

    def without_0006(manifest) -> None:
        manifest["database"]["migrations"]["search"].remove("0006_model_index")

    def without_index(rows):
        for row in rows:
            if row["model"] == "search.modelversion":
                del row["fields"]["index"]
        return rows

    older = _rewritten(archive, without_0006, without_index)
    _empty_install(settings, tmp_path / "fresh")
    call_command("restore", str(older), stdout=io.StringIO())

    assert ModelVersion.objects.get(status="active").index == {}  # the new column's default
    after = _top10(api_client)
    assert [[(i, p) for i, p, _ in hits] for hits in after] == [
        [(i, p) for i, p, _ in hits] for hits in before
    ]


def test_an_archive_from_before_a_migration_that_rewrites_rows_is_refused(
    small_catalog, settings, tmp_path
) -> None:
    # Django's auth 0011 (RunPython) rewrites permissions; loaded after it, older rows would skip it.
    archive = _backup(tmp_path)

    def before_auth_0011(manifest) -> None:
        auth = manifest["database"]["migrations"]["auth"]
        del auth[auth.index("0011_update_proxy_permissions") :]

    older = _rewritten(archive, before_auth_0011)
    _empty_install(settings, tmp_path / "fresh")
    message = _refusal(older)
    assert "migrations that rewrite rows (auth 0011_update_proxy_permissions" in message
    assert not ModelVersion.objects.exists()


def test_a_snapshot_of_the_other_engine_is_rebuilt_from_the_recipe(
    small_catalog, api_client, settings, tmp_path
) -> None:
    before = _top10(api_client)
    archive = _backup(tmp_path)
    from_server = _rewritten(archive, lambda m: m["vectors"].update(format="qdrant-snapshot"))
    _empty_install(settings, tmp_path / "fresh")
    out = io.StringIO()
    call_command("restore", str(from_server), stdout=out)

    assert "rebuilt from the recipe" in out.getvalue().splitlines()[-1]
    after = _top10(api_client)
    assert [[(i, p) for i, p, _ in hits] for hits in after] == [
        [(i, p) for i, p, _ in hits] for hits in before
    ]


def test_long_copies_say_how_far_they_are(small_catalog, monkeypatch, settings, tmp_path) -> None:
    monkeypatch.setattr("search.services.backup.archive.PROGRESS_EVERY", 5)
    monkeypatch.setattr("search.services.backup.restore.PROGRESS_EVERY", 5)
    out = io.StringIO()
    call_command("backup", "--out", str(tmp_path / "drill.tar"), stdout=out)
    assert "  media: 15 files" in out.getvalue()  # 18 images: lines at 5, 10 and 15
    _empty_install(settings, tmp_path / "fresh")
    out = io.StringIO()
    call_command("restore", str(tmp_path / "drill.tar"), stdout=out)
    assert "  media: 15 files in place" in out.getvalue()
    assert "  checked 15 members" in out.getvalue()
