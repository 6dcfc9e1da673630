from __future__ import annotations

from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Import a JSON Lines manifest: the same as `sync_catalog MANIFEST --format jsonl` (kept for scripts)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("manifest", type=Path, help="JSONL file; image paths are relative to its folder.")
        parser.add_argument("--quiet-errors", action="store_true", help="Only print the summary.")

    def handle(self, *args, manifest: Path, quiet_errors: bool = False, **options) -> None:
        if not manifest.is_file():
            raise CommandError(f"Manifest not found: {manifest}")
        call_command(
            "sync_catalog",
            str(manifest),
            format="jsonl",
            quiet_errors=quiet_errors,
            stdout=self.stdout._out,
            stderr=self.stderr._out,
        )
