"""``manage.py restore``: an archive ``backup`` wrote, into an empty install (or, told to, over one).

Order: check the whole archive (checksums, format, schema) and the install before anything is
written; unpack to a staging folder beside the media; then the database (one transaction), media,
the model's files, and the vectors (the snapshot, or rebuilt from the recipe where there is none or it
was taken on the other engine); last the reconciliation that makes database and store agree.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from search import selectors
from search.embedders import reset_embedders
from search.models import ModelVersion
from search.services.model_versions import model_version_relocate
from search.services.reconcile import reconcile
from search.services.text_index import TEXT_PREFIX, rebuild_text_index
from search.vector_store import ALIAS, COLLECTION_PREFIX, VectorStore, vector_store

from . import database
from .archive import PROGRESS_EVERY, BackupError, extract, read_verified


@dataclass
class RestoreReport:
    archive: Path
    seconds: float = 0.0
    rows: int = 0
    media_files: int = 0
    model_version: int | None = None
    vectors: str = ""
    points: dict[str, int] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)

    def summary(self) -> str:
        model = f"model v{self.model_version}" if self.model_version is not None else "no active model"
        points = ", ".join(f"{c} ({n} points)" for c, n in self.points.items()) or "no collection"
        return (
            f"Restored {self.archive.name} in {self.seconds:.1f} s: {self.rows} database rows, "
            f"{self.media_files} media files, {model}, vectors {self.vectors}: {points}."
        )


def backup_restore(
    *, archive: Path, replace: bool = False, progress: Callable[[str], None] = lambda _line: None
) -> RestoreReport:
    archive = Path(archive).absolute()
    started = time.monotonic()
    step = time.monotonic()
    manifest = read_verified(archive, progress)
    members = len(manifest["members"])
    progress(f"archive: {members} members match their checksums ({time.monotonic() - step:.1f} s)")
    newer = database.newer_migrations(manifest["database"]["migrations"])
    if newer:
        more = f" and {len(newer) - 1} more" if len(newer) > 1 else ""
        raise BackupError(
            f"{archive.name} holds a database schema newer than this Lookalike ({newer[0]}{more}); "
            "upgrade Lookalike, then restore."
        )
    rewrites = database.data_migrations_since(manifest["database"]["migrations"])
    if rewrites:
        more = f" and {len(rewrites) - 1} more" if len(rewrites) > 1 else ""
        raise BackupError(
            f"{archive.name} comes from a release before migrations that rewrite rows ({rewrites[0]}{more}); "
            "restore it with that release, then upgrade."
        )
    store = vector_store()
    occupied = _occupied(store, manifest)
    if occupied and not replace:
        raise BackupError(
            f"this install is not empty ({occupied[0]}); restore into an empty one, or pass --replace "
            "to delete what it holds first."
        )
    report = RestoreReport(archive=archive)
    media_root = Path(settings.MEDIA_ROOT)
    media_root.parent.mkdir(parents=True, exist_ok=True)
    # Beside the media, so moving the photos into place is a rename, not a copy.
    with tempfile.TemporaryDirectory(prefix=".lookalike-restore-", dir=media_root.parent) as work:
        stage = Path(work)
        step = time.monotonic()
        extract(archive, stage)
        progress(f"unpacked to a staging folder ({time.monotonic() - step:.1f} s)")
        if occupied:
            _clear(store, manifest)
            progress("replace: emptied the database, media, the model's folder and the vector collections")
        _restore_database(stage, manifest, report, progress)
        _restore_files(stage, manifest, report, progress)
        # An embedder this process opened before would read the model from where it was before.
        reset_embedders()
        _restore_vectors(store, stage, manifest, report, progress)
    selectors.forget_active_model()
    report.seconds = time.monotonic() - started
    return report


def _model_dir(meta: dict[str, Any]) -> Path:
    # TF Serving's layout (ml/export.py): <MODELS_DIR>/<name>/<version>/.
    return Path(settings.MODELS_DIR) / str(meta["name"]) / str(meta["version"])


def _occupied(store: VectorStore, manifest: dict[str, Any]) -> list[str]:
    found = []
    rows = sum(database.row_counts().values())
    if rows:
        found.append(f"the database holds {rows} rows")
    for label, folder in (
        ("MEDIA_ROOT", settings.MEDIA_ROOT),
        ("SEARCH_LOG_PHOTOS_DIR", settings.SEARCH_LOG_PHOTOS_DIR),
    ):
        if Path(folder).is_dir() and any(p.is_file() for p in Path(folder).rglob("*")):
            found.append(f"{label} holds files")
    collections = [c for c in store.list_collections() if c.startswith(COLLECTION_PREFIX)]
    if collections:
        found.append(f"the vector store holds {collections[0]}")
    if manifest["model"] and _model_dir(manifest["model"]).exists():
        found.append(f"MODELS_DIR holds model {manifest['model']['name']} v{manifest['model']['version']}")
    return found


def _clear(store: VectorStore, manifest: dict[str, Any]) -> None:
    database.flush()
    for folder in (settings.MEDIA_ROOT, settings.SEARCH_LOG_PHOTOS_DIR):
        shutil.rmtree(folder, ignore_errors=True)
    if manifest["model"]:
        shutil.rmtree(_model_dir(manifest["model"]), ignore_errors=True)
    # Only this project's collections: a shared Qdrant server may hold other applications' too. The
    # text index goes too: its points are keyed by product id, which the restored catalog reuses.
    for name in store.list_collections():
        if name.startswith((COLLECTION_PREFIX, TEXT_PREFIX)):
            store.drop_collection(name)


def _restore_database(
    stage: Path, manifest: dict[str, Any], report: RestoreReport, progress: Callable[[str], None]
) -> None:
    step = time.monotonic()
    db = manifest["database"]
    counts = database.load(stage / db["member"])
    short = {label: n for label, n in db["counts"].items() if counts.get(label, 0) < n}
    if short:
        label = sorted(short)[0]
        raise BackupError(
            f"the database holds {counts.get(label, 0)} {label} rows after loading, the archive {short[label]}."
        )
    report.rows = sum(db["counts"].values())
    progress(f"database: {report.rows} rows loaded ({time.monotonic() - step:.1f} s)")


def _move_tree(src: Path, dest: Path, progress: Callable[[str], None] | None = None) -> int:
    moved = 0
    if not src.is_dir():
        return moved
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        moved += 1
        if progress is not None and moved % PROGRESS_EVERY == 0:
            progress(f"  {src.name}: {moved} files in place")
    return moved


def _restore_files(
    stage: Path, manifest: dict[str, Any], report: RestoreReport, progress: Callable[[str], None]
) -> None:
    step = time.monotonic()
    report.media_files = _move_tree(stage / "media", Path(settings.MEDIA_ROOT), progress)
    photos = _move_tree(stage / "search-photos", Path(settings.SEARCH_LOG_PHOTOS_DIR))
    progress(
        f"media: {report.media_files} files, shoppers' kept photos: {photos} ({time.monotonic() - step:.1f} s)"
    )
    meta = manifest["model"]
    if not meta:
        return
    step = time.monotonic()
    target = _model_dir(meta)
    _move_tree(stage / "model" / "export", target)
    paths = {"export_path": str(target)}
    for name, member in meta["extras"].items():
        src = stage / member
        dest = Path(settings.MODELS_DIR) / "restored" / str(meta["version"]) / name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(src, dest)
        paths[name] = str(dest)
    model = ModelVersion.objects.get(version=meta["version"])
    # The archive's paths were the old machine's; the row now names where the files are here.
    model_version_relocate(model, paths=paths)
    report.model_version = model.version
    progress(
        f"model v{model.version}: {meta['files']} files into {target.name} ({time.monotonic() - step:.1f} s)"
    )


def _restore_vectors(
    store: VectorStore,
    stage: Path,
    manifest: dict[str, Any],
    report: RestoreReport,
    progress: Callable[[str], None],
) -> None:
    meta = manifest["vectors"]
    step = time.monotonic()
    usable = meta["mode"] == "snapshot" and meta.get("format") == store.snapshot_format
    if usable:
        for entry in meta["collections"]:
            store.restore_snapshot(entry["name"], stage / entry["member"])
            points = store.count(entry["name"])
            report.points[entry["name"]] = points
            progress(
                f"vectors: {entry['name']} restored from its snapshot, {points} points "
                f"(archive: {entry['points']}; {time.monotonic() - step:.1f} s)"
            )
        if meta.get("alias") and store.collection_exists(meta["alias"]):
            store.set_alias(ALIAS, meta["alias"])
        report.vectors = "from the snapshot"
    else:
        why = (
            "the archive has the recipe only"
            if meta["mode"] != "snapshot"
            else (f"its snapshot is {meta.get('format')}, this store takes {store.snapshot_format}")
        )
        progress(
            f"vectors: rebuilding from the catalog with the restored model ({why}); every image is embedded"
        )
        report.vectors = "rebuilt from the recipe"
    # Repairs both ways whatever happened between the database dump and the snapshot (and, from the
    # recipe, embeds every image): afterwards the store holds exactly the images the database does.
    step = time.monotonic()
    for line in reconcile():
        report.repaired.append(line.summary())
        report.points[line.collection] = store.count(line.collection)
        progress(f"reconcile: {line.summary()} ({time.monotonic() - step:.1f} s)")
    active = selectors.active_model()
    if active is not None and store.collection_exists(active.collection):
        store.set_alias(ALIAS, active.collection)
    # The text index is not in the archive: it is derived from the restored rows (products and the
    # text read on their photos), so it is written from them.
    step = time.monotonic()
    text = rebuild_text_index()
    progress(f"text index: {text.written} product(s) written ({time.monotonic() - step:.1f} s)")
