"""A lock held across threads and processes while one of them does something that must happen once
(exporting the pretrained model when the first imports and uploads arrive together)."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from django.conf import settings
from django.db import connection

try:
    import fcntl as _posix_fcntl

    fcntl: ModuleType | None = _posix_fcntl
except ImportError:  # not POSIX: one process per store anyway, so a lock within the process will do
    fcntl = None

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def _advisory_key(name: str) -> int:
    return zlib.crc32(f"lookalike:{name}".encode())


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the lock ``name`` while the block runs; others wait. On PostgreSQL a session advisory lock
    (released by the server if the holder dies); on SQLite, whose users share one machine, an flock on
    a file under VAR_DIR (released by the kernel if the holder dies). Neither holds a transaction open,
    so the waiting threads' other writes go on."""
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    if fcntl is None:
        with _local_guard:
            lock = _local_locks.setdefault(name, threading.Lock())
        with lock:
            yield
        return
    folder = Path(settings.VAR_DIR) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    # Each call opens the file anew: flock conflicts between open files, so threads exclude each other too.
    with open(folder / f"{name}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
