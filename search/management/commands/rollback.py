from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Re-activate the previously active model (its collection was kept) and re-index what it lacks."

    def handle(self, *args, **options) -> None:
        from search.services import reindex
        from search.vector_store import VectorStoreError

        try:
            result = reindex.rollback()
        except (reindex.ReindexError, VectorStoreError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Active model is v{result.restored.version} again (was v{result.replaced.version}); "
                f"{result.missing_enqueued} image(s) uploaded since were queued for indexing."
            )
        )
