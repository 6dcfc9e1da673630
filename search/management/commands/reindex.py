from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.job_console import run_job_command


class Command(BaseCommand):
    help = (
        "Move the index to a model version (default: the latest candidate) with no downtime: fill its "
        "collection, compare it with the active model on held-out photos, promote if not worse. Runs "
        "here when nothing else holds the vector store, else in the process that does (the web server, "
        "or the Celery workers), followed here until it ends."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--model", type=int, default=None, help="Model version number (default: latest candidate)."
        )
        parser.add_argument(
            "--force", action="store_true", help="Promote even if the evaluation gate says worse."
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(self, *args, model: int | None, force: bool, no_wait: bool, **options) -> None:
        run_job_command(self, kind="reindex", params={"model": model, "force": force}, no_wait=no_wait)
