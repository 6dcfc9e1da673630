"""The database part of a backup: Django's own serialization, one gzipped JSON file.

Why not pg_dump: one path for both layouts (SQLite in the embedded default, PostgreSQL in
production), so an archive taken on one restores on the other (the way from a trial install to the
compose stack); no client binaries whose major version must match the server's in the web image;
and the archive names its schema as migration names, so a restore can refuse a schema newer than
its code and load an older one's rows into this schema (see data_migrations_since). The price is
speed: a serializer walks every row in Python, where pg_dump -Fc would stream (docs/operations.md has
the times measured). An operator with a large database keeps pg_dump and WAL archiving for
point-in-time recovery beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.apps import apps
from django.core.management import call_command
from django.db import connection, migrations, transaction
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


def data_migrations_since(archived: dict[str, list[str]]) -> list[str]:
    """This code's migrations the archive's database had not run that change rows, not only the schema.

    Rows are loaded through this code's models, into this code's schema: a field added since takes its
    default and one removed since is skipped. A migration that rewrites rows (RunPython, RunSQL) would
    not be replayed on them, so such an archive is refused (restore it with its own release, then
    upgrade) rather than loaded wrong.
    """
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    done = {(app, name) for app, names in archived.items() for name in names}
    return [
        f"{key[0]} {key[1]}"
        for key in sorted(graph.nodes)
        if key not in done
        and any(
            isinstance(op, migrations.RunPython | migrations.RunSQL) for op in graph.nodes[key].operations
        )
    ]


def load(dump_file: Path) -> dict[str, int]:
    """This code's schema, then the archive's rows in one transaction (loaddata rolls back on failure)."""
    call_command("migrate", verbosity=0, interactive=False)
    try:
        # Fields an older release had and this one dropped are skipped.
        call_command("loaddata", str(dump_file), ignorenonexistent=True, verbosity=0)
    except Exception as exc:  # loaddata wraps every failure in its own types, after rolling back
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise BackupError(f"the database dump could not be loaded ({first}).") from exc
    return row_counts()
