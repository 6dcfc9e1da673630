"""Shoppers' photos, kept only with SEARCH_LOG_PHOTOS=true: content-addressed files (the name comes from
the bytes) under SEARCH_LOG_PHOTOS_DIR, a folder of their own. Never under MEDIA_ROOT: the proxy and
the embedded media view serve that folder to anyone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from ml.preprocess import EXTENSIONS, sniff_format


def storage() -> FileSystemStorage:
    # Built per call: the setting is read when used (tests point it at a temporary folder).
    return FileSystemStorage(location=settings.SEARCH_LOG_PHOTOS_DIR, base_url=None)


def extension(data: bytes) -> str:
    # By the magic number: ml.preprocess decoded the photo already, so it is one of the accepted formats.
    return EXTENSIONS.get(sniff_format(data) or "", "bin")


def name_for(sha256: str, ext: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{ext}"


def write_photo(data: bytes) -> tuple[str, str]:
    """Store the bytes at their content address (a no-op when present); return (sha256, name)."""
    sha256 = hashlib.sha256(data).hexdigest()
    name = name_for(sha256, extension(data))
    store = storage()
    if not store.exists(name):
        saved = store.save(name, ContentFile(data))
        if saved != name:  # a concurrent search stored the same photo first; keep theirs
            store.delete(saved)
    return sha256, name


def path_of(name: str) -> Path:
    return Path(storage().path(name))


def delete_photo(name: str) -> None:
    store = storage()
    if name and store.exists(name):
        store.delete(name)


def files_older_than(cutoff_ts: float) -> list[str]:
    """Names of photo files last modified before ``cutoff_ts`` (epoch seconds)."""
    root = Path(settings.SEARCH_LOG_PHOTOS_DIR)
    if not root.is_dir():
        return []
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.stat().st_mtime < cutoff_ts
    )
