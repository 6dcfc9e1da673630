from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Restore an archive written by `manage.py backup` into an empty install: database, media, model "
        "files and vectors (from the snapshot, or re-embedded from the recipe), then reconcile. Refuses "
        "a corrupt archive, one from a newer schema, and a non-empty install unless --replace."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("archive", help="The .tar file `manage.py backup` wrote.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Delete this install's database rows, media, model folder and vector collections first.",
        )

    def handle(self, *args, archive: str, replace: bool, **options) -> None:
        from search.services.backup import BackupError, backup_restore
        from search.vector_store import VectorStoreError

        try:
            report = backup_restore(archive=Path(archive), replace=replace, progress=self.stdout.write)
        except (BackupError, VectorStoreError, OSError) as exc:
            raise CommandError(f"restore: {exc}") from None
        self.stdout.write(self.style.SUCCESS(report.summary()))
