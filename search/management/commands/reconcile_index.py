from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.job_console import run_job_command


class Command(BaseCommand):
    help = (
        "Compare the catalog with the vector store and repair both ways; prints what it found and fixed. "
        "Handed to the process that holds the vector store when another one does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Only report.")
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(self, *args, dry_run: bool, no_wait: bool, **options) -> None:
        run_job_command(self, kind="reconcile", params={"dry_run": dry_run}, no_wait=no_wait)
