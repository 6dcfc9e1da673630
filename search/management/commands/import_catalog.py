from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from search.management.job_console import report, run_job_command


class Command(BaseCommand):
    help = (
        "Import products and images from a JSON Lines manifest (the catalog sync's JSONL format; idempotent "
        "by sku and image) and index them; with no active model the pretrained one is made first, so the "
        "catalog is searchable when it ends. Handed to the process that holds the vector store when another "
        "one does. Feeds (Merchant Center, Shopify, URLs): manage.py sync_catalog."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("manifest", type=Path, help="JSONL file; image paths are relative to its folder.")
        parser.add_argument(
            "--images-root",
            type=Path,
            default=None,
            help="The folder image paths are relative to (default: the manifest's own); paths may not leave it.",
        )
        parser.add_argument("--quiet-errors", action="store_true", help="Only print the summary.")
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(
        self,
        *args,
        manifest: Path,
        images_root: Path | None = None,
        quiet_errors: bool = False,
        no_wait: bool = False,
        **options,
    ) -> None:
        if not manifest.is_file():
            raise CommandError(f"Manifest not found: {manifest}")
        if images_root is not None and not images_root.is_dir():
            raise CommandError(f"Images root not found: {images_root}")
        job = run_job_command(
            self,
            kind="import",
            params={
                "manifest": str(manifest.resolve()),
                "images_root": str(images_root.resolve()) if images_root else None,
            },
            no_wait=no_wait,
            summary=False,
        )
        if not quiet_errors:
            for error in job.result.get("errors", []):
                self.stderr.write(error)
            if job.result.get("more_errors"):
                self.stderr.write(f"... and {job.result['more_errors']} more rejected line(s)")
        report(self, job)
