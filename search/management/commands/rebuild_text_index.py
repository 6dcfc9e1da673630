from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.job_console import run_job_command


class Command(BaseCommand):
    help = (
        "Write every product's text (title, brand, attributes, description, words read on its images) "
        "into the text index again, and remove the products that are gone. Handed to the process that "
        "holds the vector store when another one does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(self, *args, no_wait: bool, **options) -> None:
        run_job_command(self, kind="text_index", params={}, no_wait=no_wait)
