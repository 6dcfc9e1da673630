from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Write one archive with the database, the media, the active model's files and a snapshot of the "
        "vector store (or only the recipe to rebuild it), with a manifest of versions, counts and "
        "checksums. In the embedded default stop the site first: it holds the vector store."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--out",
            default=None,
            help="The archive to write (default: lookalike-backup-<UTC time>.tar here); never overwritten.",
        )
        parser.add_argument(
            "--vectors",
            choices=["snapshot", "recipe"],
            default="snapshot",
            help="snapshot: the vector store's own snapshot (restores in seconds); recipe: leave the "
            "vectors out, the restore re-embeds every image with the archived model (smaller, slower).",
        )

    def handle(self, *args, out: str | None, vectors: str, **options) -> None:
        from search.services.backup import BackupError, backup_create
        from search.vector_store import VectorStoreError

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = Path(out) if out else Path(f"lookalike-backup-{stamp}.tar")
        try:
            report = backup_create(out=path, vectors=vectors, progress=self.stdout.write)
        except (BackupError, VectorStoreError, OSError) as exc:
            raise CommandError(f"backup failed: {exc}") from None
        self.stdout.write(self.style.SUCCESS(report.summary()))
