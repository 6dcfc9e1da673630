from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Compare the catalog with the vector store and repair both ways; prints what it found and fixed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Only report.")

    def handle(self, *args, dry_run: bool, **options) -> None:
        from search.services.reconcile import reconcile
        from search.vector_store import VectorStoreError

        try:
            reports = reconcile(dry_run=dry_run)
        except VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        from catalog.storage import orphan_files

        files = orphan_files(remove=not dry_run)
        self.stdout.write(("[dry run] " if dry_run else "") + f"media: {len(files)} orphan file(s) removed")
        if not reports:
            self.stdout.write("No active model; nothing to reconcile.")
        for report in reports:
            self.stdout.write(self.style.SUCCESS(("[dry run] " if dry_run else "") + report.summary()))
            for image_id, error in list(report.failed.items())[:20]:
                self.stdout.write(f"  failed {image_id}: {error}")
