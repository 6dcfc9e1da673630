from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.job_console import run_job_command


class Command(BaseCommand):
    help = (
        "Index every image that is pending or failed now (the sweeper's work); with no active model, "
        "the pretrained one is made first. Handed to the process that holds the vector store when "
        "another one does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(self, *args, no_wait: bool, **options) -> None:
        run_job_command(self, kind="index_pending", no_wait=no_wait)
