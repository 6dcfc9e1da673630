from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search import selectors
from search.services.indexing import index_pending_images

CHUNK = 64


class Command(BaseCommand):
    help = "Index every image that is pending or failed, in this process (the sweeper's work, run now)."

    def handle(self, *args, **options) -> None:
        from search.vector_store import VectorStoreError, vector_store

        try:
            vector_store()
        except VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        due = selectors.due_for_sweep(include_fresh=True)
        indexed = failed = 0
        with tqdm(total=len(due), unit="img", desc="index", disable=None) as bar:
            for start in range(0, len(due), CHUNK):
                outcome = index_pending_images(due[start : start + CHUNK])
                indexed += len(outcome.indexed)
                failed += len(outcome.failed)
                bar.update(len(due[start : start + CHUNK]))
        self.stdout.write(self.style.SUCCESS(f"Indexed {indexed} image(s); {failed} failed."))
