from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.job_console import run_job_command


class Command(BaseCommand):
    help = (
        "Fit the active model's balanced answers now, on the photo searches logged for it (a catalog "
        "with one photo per product; at least 200 searches). Handed to the process that holds the "
        "vector store when another one does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(self, *args, no_wait: bool, **options) -> None:
        run_job_command(self, kind="balance", params={}, no_wait=no_wait)
