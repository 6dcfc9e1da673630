"""Content-addressed image files: the path is derived from the bytes, so a re-upload is a no-op
and two rows with the same bytes share one file (deleted only when the last row goes)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from catalog.models import ProductImage
from ml.preprocess import EXTENSIONS


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_for(sha256: str, image_format: str) -> str:
    ext = EXTENSIONS.get(image_format.upper(), "bin")
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"


def write_image(data: bytes, sha256: str, image_format: str) -> tuple[str, bool]:
    """Store the bytes at their content address; return (name, created_now)."""
    name = path_for(sha256, image_format)
    if default_storage.exists(name):
        return name, False
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:  # a concurrent writer won the race; keep theirs (identical bytes)
        default_storage.delete(saved)
    return name, True


def read_image(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def delete_if_unreferenced(name: str) -> bool:
    if not name or ProductImage.objects.filter(file=name).exists():
        return False
    if default_storage.exists(name):
        default_storage.delete(name)
        return True
    return False


def release_files_on_commit(names: Iterable[str]) -> None:
    """Delete files no row references any more, once the deleting transaction has committed."""
    pending = [n for n in names if n]
    if pending:
        transaction.on_commit(lambda: [delete_if_unreferenced(n) for n in pending])


def orphan_files(*, min_age_s: float = 3600.0, remove: bool = False) -> list[str]:
    """Image files no row references, older than ``min_age_s`` (younger ones may belong to an upload
    whose transaction has not committed yet). A rolled-back outer transaction can leave such files."""
    root = Path(settings.MEDIA_ROOT) / "images"
    if not root.is_dir():
        return []
    cutoff = time.time() - min_age_s
    on_disk = {
        str(p.relative_to(settings.MEDIA_ROOT)): p
        for p in root.rglob("*")
        if p.is_file() and p.stat().st_mtime < cutoff
    }
    referenced = set(ProductImage.objects.filter(file__in=list(on_disk)).values_list("file", flat=True))
    orphans = sorted(name for name in on_disk if name not in referenced)
    if remove:
        for name in orphans:
            on_disk[name].unlink(missing_ok=True)
    return orphans
