from __future__ import annotations

from django.core.management.base import BaseCommand

from search.management.job_console import run_job_command


class Command(BaseCommand):
    help = (
        "Build the graph (HNSW, int8 vectors) of a model's collection off the request path and choose the "
        "hnsw_ef its searches use by measured recall@10; small collections stay exact. Handed to the "
        "process that holds the vector store when another one does."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--model", type=int, default=None, help="Model version (default: the active one)."
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="Queue the job, print its id and return at once."
        )

    def handle(self, *args, model: int | None, no_wait: bool, **options) -> None:
        run_job_command(self, kind="optimize_index", params={"model": model}, no_wait=no_wait)
