from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog import selectors
from catalog.services.imports import count_lines, import_manifest


class Command(BaseCommand):
    help = "Import products and images from a JSON Lines manifest (idempotent by sku and image sha256)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("manifest", type=Path, help="JSONL file; image paths are relative to its folder.")
        parser.add_argument("--quiet-errors", action="store_true", help="Only print the summary.")

    def handle(self, *args, manifest: Path, quiet_errors: bool = False, **options) -> None:
        if not manifest.is_file():
            raise CommandError(f"Manifest not found: {manifest}")
        total = count_lines(manifest)
        with tqdm(total=total, unit="line", desc="import", disable=None) as bar:
            report = import_manifest(manifest, on_line=bar.update)
        if not quiet_errors:
            for error in report.errors:
                self.stderr.write(str(error))
        style = self.style.SUCCESS if not report.errors else self.style.WARNING
        self.stdout.write(style(report.summary()))
        if report.added_image_ids:
            # Indexing was announced per line; with tasks in-process it has run already, with a broker
            # the workers pick it up. Images still pending are indexed by whoever owns the vector store.
            counts = selectors.index_status_counts(image_ids=report.added_image_ids)
            self.stdout.write(
                f"New images: {counts['indexed']} indexed, {counts['pending']} pending, {counts['failed']} failed."
            )
