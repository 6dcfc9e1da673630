"""The backup archive: one uncompressed tar whose last member is ``manifest.json``.

The manifest names every other member with its size and SHA-256, so a restore can tell a whole archive
from a damaged one before it touches anything. Members are written straight from their files (media
and models are read once, hashed as they stream in); the manifest goes last because only then are the
checksums known. Uncompressed: the photos and the vector snapshots barely compress, and the database
dump is gzipped on its own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

FORMAT = "lookalike-backup"
# Bumped when the layout changes so that an older restore cannot misread it.
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
# A progress line per this many files (a catalog of 100,000 images is minutes of copying).
PROGRESS_EVERY = 10_000


class BackupError(Exception):
    """Why a backup or a restore stopped: one line for the operator, with what to do where there is a fix."""


class _Hashing:
    """A file object that hashes what tarfile reads through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.sha.update(data)
        return data


@dataclass
class TreeStats:
    files: int = 0
    bytes: int = 0


class ArchiveWriter:
    """Members go to ``<path>.partial``, renamed to ``path`` by ``finish``: a backup that stops midway
    leaves no file that looks like an archive."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.members: dict[str, dict[str, Any]] = {}
        self._tar = tarfile.open(self.partial, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed by finish/abort

    def add_file(self, src: Path, arcname: str) -> int:
        info = self._tar.gettarinfo(str(src), arcname=arcname)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(src, "rb") as fh:
            hashing = _Hashing(fh)
            self._tar.addfile(info, hashing)
        self.members[arcname] = {"size": info.size, "sha256": hashing.sha.hexdigest()}
        return info.size

    def add_tree(self, root: Path, prefix: str, progress: Callable[[str], None] | None = None) -> TreeStats:
        """Every regular file under ``root`` (links and other special files are left out)."""
        stats = TreeStats()
        for path in sorted(_files_under(Path(root))):
            stats.bytes += self.add_file(path, f"{prefix}/{path.relative_to(root).as_posix()}")
            stats.files += 1
            if progress is not None and stats.files % PROGRESS_EVERY == 0:
                progress(f"  {prefix}: {stats.files} files, {stats.bytes / 1e6:.0f} MB so far")
        return stats

    def finish(self, manifest: dict[str, Any]) -> int:
        body = json.dumps({**manifest, "members": self.members}, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(body)
        info.mode = 0o644
        self._tar.addfile(info, _BytesReader(body))
        self._tar.close()
        os.replace(self.partial, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        with contextlib.suppress(OSError, tarfile.TarError):
            self._tar.close()
        self.partial.unlink(missing_ok=True)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.pos + size
        chunk, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return chunk


def _files_under(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not Path(folder, d).is_symlink()]
        for name in files:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                yield path


def read_verified(path: Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The archive's manifest, after checking every member against it; BackupError if anything is off."""
    name = Path(path).name
    if not Path(path).is_file():
        raise BackupError(f"{path}: no such file.")
    sums: dict[str, tuple[int, str]] = {}
    manifest_bytes = None
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    raise BackupError(f"{name} is corrupt: unexpected member {info.name!r}.")
                fh = tar.extractfile(info)
                assert fh is not None  # a regular file always has one
                if info.name == MANIFEST:
                    manifest_bytes = fh.read()
                    continue
                sha = hashlib.sha256()
                for chunk in iter(functools.partial(fh.read, _CHUNK), b""):
                    sha.update(chunk)
                sums[info.name] = (info.size, sha.hexdigest())
                if progress is not None and len(sums) % PROGRESS_EVERY == 0:
                    progress(f"  checked {len(sums)} members")
    except (OSError, EOFError, tarfile.TarError) as exc:
        raise BackupError(f"{name} is corrupt or not a Lookalike backup ({exc}).") from None
    if manifest_bytes is None:
        raise BackupError(f"{name} is corrupt or not a Lookalike backup (no {MANIFEST}).")
    try:
        manifest: dict[str, Any] = json.loads(manifest_bytes)
        members = manifest["members"]
        fmt, version = manifest["format"], int(manifest["format_version"])
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{name} is corrupt: its {MANIFEST} cannot be read.") from None
    if fmt != FORMAT:
        raise BackupError(f"{name} is not a Lookalike backup (format {fmt!r}).")
    if version > FORMAT_VERSION:
        raise BackupError(
            f"{name} is in backup format {version}, newer than this Lookalike reads ({FORMAT_VERSION}); "
            "restore it with the release that made it or a newer one."
        )
    for member, meta in members.items():
        got = sums.pop(member, None)
        if got is None:
            raise BackupError(f"{name} is corrupt: {member} is missing.")
        if got != (meta.get("size"), meta.get("sha256")):
            raise BackupError(f"{name} is corrupt: {member} does not match its checksum.")
    if sums:
        raise BackupError(f"{name} is corrupt: {sorted(sums)[0]} is not in its manifest.")
    return manifest


def extract(path: Path, dest: Path) -> None:
    """Unpack a verified archive under ``dest`` (no member can land outside it)."""
    with tarfile.open(path, "r:") as tar:
        tar.extractall(dest, filter="data")
