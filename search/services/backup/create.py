"""``manage.py backup``: the database, the media, the active model's files and the vector store's
snapshot (or only the recipe to rebuild it), in one archive with a manifest."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import django
from django.conf import settings

from search import selectors
from search.models import ModelVersion
from search.vector_store import ALIAS, VectorStore, vector_store

from . import database
from .archive import FORMAT, FORMAT_VERSION, ArchiveWriter, BackupError

DB_MEMBER = "database.json.gz"
# The model row's other files besides the export folder (reports, plots, the trained .keras file).
MODEL_EXTRAS = ("keras_path", "report_path", "plot_path", "calibration_plot_path")
VECTOR_MODES = ("snapshot", "recipe")


@dataclass
class BackupReport:
    path: Path
    bytes: int = 0
    seconds: float = 0.0
    rows: int = 0
    media_files: int = 0
    model_version: int | None = None
    vectors: str = "snapshot"
    points: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        model = f"model v{self.model_version}" if self.model_version is not None else "no active model"
        if self.vectors == "snapshot":
            vectors = ", ".join(f"{c} ({n} points)" for c, n in self.points.items()) or "no collection"
            vectors = f"vector snapshot: {vectors}"
        else:
            vectors = "vectors: the recipe only (restore re-embeds every image)"
        return (
            f"Backup written: {self.path} ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f} s: "
            f"{self.rows} database rows, {self.media_files} media files, {model}, {vectors}."
        )


def _version() -> str:
    try:
        return metadata.version("lookalike")
    except metadata.PackageNotFoundError:
        return "unknown"


def backup_create(
    *, out: Path, vectors: str = "snapshot", progress: Callable[[str], None] = lambda _line: None
) -> BackupReport:
    """Write the archive to ``out`` (refused if it exists). The database is read as of one moment;
    media and vectors are read after it, so they may hold a few images newer than the database, which
    the restore's reconciliation removes again."""
    out = Path(out).absolute()
    if vectors not in VECTOR_MODES:
        raise BackupError(f"--vectors must be one of {', '.join(VECTOR_MODES)}, not {vectors!r}.")
    if out.exists():
        raise BackupError(f"{out} exists already; name a new file.")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} is not a folder.")
    # Opened before anything is written: in the embedded default a running site holds the store, and
    # this is where the one-line "in use by another process" message should stop the backup.
    store = vector_store() if vectors == "snapshot" else None
    started = time.monotonic()
    report = BackupReport(path=out, vectors=vectors)
    writer = ArchiveWriter(out)
    try:
        with tempfile.TemporaryDirectory(prefix=".lookalike-backup-", dir=out.parent) as work:
            manifest = _write_members(writer, Path(work), store, report, progress)
        report.bytes = writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise
    report.seconds = time.monotonic() - started
    return report


def _write_members(
    writer: ArchiveWriter,
    work: Path,
    store: VectorStore | None,
    report: BackupReport,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    step = time.monotonic()
    dump_file = work / DB_MEMBER
    db = database.dump(dump_file)
    size = writer.add_file(dump_file, DB_MEMBER)
    dump_file.unlink()
    report.rows = sum(db["counts"].values())
    progress(
        f"database ({db['vendor']}): {report.rows} rows of {len(db['counts'])} tables, "
        f"{size / 1e6:.1f} MB, {time.monotonic() - step:.1f} s"
    )

    step = time.monotonic()
    media = writer.add_tree(Path(settings.MEDIA_ROOT), "media", progress)
    photos = writer.add_tree(Path(settings.SEARCH_LOG_PHOTOS_DIR), "search-photos", progress)
    report.media_files = media.files
    progress(
        f"media: {media.files} files, {media.bytes / 1e6:.1f} MB; shoppers' kept photos: {photos.files}; "
        f"{time.monotonic() - step:.1f} s"
    )

    step = time.monotonic()
    model = selectors.active_model()
    model_meta: dict[str, Any] | None = None
    if model is not None:
        model_meta = _write_model(writer, model)
        report.model_version = model.version
        progress(f"model v{model.version}: {model_meta['files']} files, {time.monotonic() - step:.1f} s")
    else:
        progress("model: none active")

    vector_meta: dict[str, Any] = {"mode": report.vectors, "collections": []}
    if store is not None:
        vector_meta.update(format=store.snapshot_format, alias=store.get_alias(ALIAS))
        for target in selectors.write_targets():
            if not store.collection_exists(target.collection):
                continue
            step = time.monotonic()
            points = store.count(target.collection)
            snap = store.snapshot(target.collection, work)
            member = f"vectors/{snap.name}"
            size = writer.add_file(snap, member)
            snap.unlink()
            report.points[target.collection] = points
            vector_meta["collections"].append(
                {
                    "name": target.collection,
                    "model_version": target.version,
                    "points": points,
                    "member": member,
                }
            )
            progress(
                f"vectors: {target.collection}, {points} points, {size / 1e6:.1f} MB snapshot, "
                f"{time.monotonic() - step:.1f} s"
            )
    else:
        progress("vectors: recipe only (no snapshot); the restore re-embeds every indexed image")

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "lookalike_version": _version(),
        "django_version": django.get_version(),
        "database": {"member": DB_MEMBER, **db},
        "media": {"files": media.files, "bytes": media.bytes, "search_photos": photos.files},
        "model": model_meta,
        "vectors": vector_meta,
    }


def _write_model(writer: ArchiveWriter, model: ModelVersion) -> dict[str, Any]:
    export = Path(model.export_path)
    if not export.is_dir():
        raise BackupError(
            f"the active model v{model.version}'s files are missing ({export.name}); "
            "restore them or activate another model first."
        )
    stats = writer.add_tree(export, "model/export")
    extras: dict[str, str] = {}
    for name in MODEL_EXTRAS:
        value = getattr(model, name)
        path = Path(value) if value else None
        if path is None or not path.exists():
            continue
        member = f"model/{name}/{path.name}"
        if path.is_dir():
            stats.files += writer.add_tree(path, member).files
        else:
            writer.add_file(path, member)
            stats.files += 1
        extras[name] = member
    return {
        "version": model.version,
        "name": model.name,
        "collection": model.collection,
        "embedding_dim": model.embedding_dim,
        "files": stats.files,
        "bytes": stats.bytes,
        "extras": extras,
    }
