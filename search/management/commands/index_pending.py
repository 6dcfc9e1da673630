from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search import indexing

CHUNK = 64


class Command(BaseCommand):
    help = "Index every image that is pending or failed, in this process (the sweeper's work, run now)."

    def handle(self, *args, **options) -> None:
        from search.runtime import vector_store
        from search.vector_store import VectorStoreError

        try:
            vector_store()
        except VectorStoreError as exc:
            raise CommandError(str(exc)) from exc
        due = indexing.due_for_sweep(include_fresh=True)
        indexed = failed = 0
        with tqdm(total=len(due), unit="img", desc="index", disable=None) as bar:
            for start in range(0, len(due), CHUNK):
                outcome = indexing.index_images(due[start : start + CHUNK])
                indexed += len(outcome.indexed)
                failed += len(outcome.failed)
                bar.update(len(due[start : start + CHUNK]))
        self.stdout.write(self.style.SUCCESS(f"Indexed {indexed} image(s); {failed} failed."))
