"""The database part of a backup: Django's own serialization, one gzipped JSON file.

Why not pg_dump: one path for both layouts (SQLite in the embedded default, PostgreSQL in
production), so an archive taken on one restores on the other (the way from a trial install to the
compose stack); no client binaries whose major version must match the server's in the web image;
and the archive names its schema as migration names, so a restore can refuse a schema newer than its
code and migrate an older one forward after loading it. The price is speed: a serializer walks every
row in Python, where pg_dump -Fc would stream (see docs/operations.md for the times measured). An
operator with a large database keeps pg_dump and WAL archiving for point-in-time recovery beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from .archive import BackupError

# Rebuilt by `migrate` (content types, permissions) or worthless after a restore (sessions): left out,
# and references to content types and permissions are written by natural key so they resolve anew.
EXCLUDED = ["contenttypes", "auth.permission", "sessions"]


def _dumped_models() -> list[Any]:
    excluded_apps = {e for e in EXCLUDED if "." not in e}
    excluded_models = {e for e in EXCLUDED if "." in e}
    return [
        m
        for m in apps.get_models()
        if m._meta.app_label not in excluded_apps
        and m._meta.label_lower not in excluded_models
        and m._meta.managed
        and not m._meta.proxy
    ]


def applied_migrations() -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app_label, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app_label, []).append(name)
    return applied


def dump(out: Path) -> dict[str, Any]:
    """Write every row to ``out`` (``.json.gz``) as of one moment; returns counts and the schema."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One snapshot for every table: rows written while the dump runs are all in or all out.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        counts = {m._meta.label_lower: m._default_manager.count() for m in _dumped_models()}
        call_command(
            "dumpdata",
            exclude=EXCLUDED,
            natural_foreign=True,
            output=str(out),
            verbosity=0,
        )
        migrations = applied_migrations()
    return {"vendor": connection.vendor, "migrations": migrations, "counts": counts}


def newer_migrations(archived: dict[str, list[str]]) -> list[str]:
    """Migrations the archive's database had that this code does not know: its schema is newer."""
    known = set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
    return [
        f"{app} {name}"
        for app, names in sorted(archived.items())
        for name in names
        if (app, name) not in known
    ]


def row_counts() -> dict[str, int]:
    """Rows per dumped model, for tables that exist (a database never migrated has none)."""
    tables = set(connection.introspection.table_names())
    return {
        m._meta.label_lower: m._default_manager.count()
        for m in _dumped_models()
        if m._meta.db_table in tables
    }


def flush() -> None:
    if connection.introspection.table_names():
        call_command("flush", interactive=False, verbosity=0)


def load(dump_file: Path, archived: dict[str, list[str]]) -> dict[str, int]:
    """Bring the schema to the archive's, load its rows in one transaction, then migrate to this code's."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    leaves = set(graph.leaf_nodes())
    older = []
    for app, names in sorted(archived.items()):
        last = max(names, key=lambda n, app=app: len(graph.forwards_plan((app, n))))
        if (app, last) not in leaves:
            older.append((app, last))
    call_command("migrate", verbosity=0, interactive=False)
    # An archive from an older release: its rows fit its own schema, so the (empty) tables go back to
    # it first, and forward again with the rows in them.
    for app, last in older:
        call_command("migrate", app, last, verbosity=0, interactive=False)
    try:
        call_command("loaddata", str(dump_file), verbosity=0)
    except Exception as exc:  # loaddata wraps every failure in its own types, after rolling back
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise BackupError(f"the database dump could not be loaded ({first}).") from exc
    if older:
        call_command("migrate", verbosity=0, interactive=False)
    return row_counts()
