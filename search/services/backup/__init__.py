"""Backup and restore of a whole install: ``backup_create`` and ``backup_restore`` (see docs/operations.md).

An archive is one tar file: ``database.json.gz`` (Django's serialization; database.py says why),
``media/``, ``search-photos/``, ``model/`` (the active version's export and files), ``vectors/`` (one
snapshot per collection, in the vector store's own format) and, last, ``manifest.json`` with versions,
counts and every member's SHA-256 (archive.py).
"""

from .archive import BackupError
from .create import BackupReport, backup_create
from .restore import RestoreReport, backup_restore

__all__ = ["BackupError", "BackupReport", "RestoreReport", "backup_create", "backup_restore"]
