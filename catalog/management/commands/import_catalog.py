from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.imports import count_lines, import_manifest


class Command(BaseCommand):
    help = "Import products and images from a JSON Lines manifest (idempotent by sku and image sha256)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("manifest", type=Path, help="JSONL file; image paths are relative to its folder.")
        parser.add_argument("--quiet-errors", action="store_true", help="Only print the summary.")

    def handle(self, *args, manifest: Path, quiet_errors: bool = False, **options) -> None:
        if not manifest.is_file():
            raise CommandError(f"Manifest not found: {manifest}")
        self._warn_if_store_is_elsewhere()
        total = count_lines(manifest)
        with tqdm(total=total, unit="line", desc="import", disable=None) as bar:
            report = import_manifest(manifest, on_line=bar.update)
        if not quiet_errors:
            for error in report.errors:
                self.stderr.write(str(error))
        style = self.style.SUCCESS if not report.errors else self.style.WARNING
        self.stdout.write(style(report.summary()))

    def _warn_if_store_is_elsewhere(self) -> None:
        from django.conf import settings

        if not settings.CELERY_TASK_ALWAYS_EAGER:
            return  # workers index; this process never opens the store
        from search.runtime import vector_store
        from search.vector_store import VectorStoreError

        try:
            vector_store()
        except VectorStoreError as exc:
            self.stderr.write(
                self.style.WARNING(f"{exc} Images will be saved as pending for that process to index.")
            )
