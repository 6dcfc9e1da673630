from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from catalog.models import ProductImage
from ml.ocr import OcrUnavailable
from search import selectors
from search.services.image_text import images_text_read

PROGRESS_EVERY = 25  # images between progress lines (about 20 s of reading on a core)


class Command(BaseCommand):
    help = (
        "Read the text on catalog images (OCR) that have none yet, whose photo changed, that an older "
        "engine read or that failed; with --all, every image again. For a catalog that existed before "
        "text was read at ingest. Runs here, in this process (about 0.9 s per photo on a core)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--all", action="store_true", help="Read every image again.")
        parser.add_argument(
            "--skip-failed", action="store_true", help="Leave images whose reading failed before."
        )
        parser.add_argument("--limit", type=int, default=0, help="Read at most this many images.")

    def handle(self, *args, all: bool, skip_failed: bool, limit: int, **options) -> None:
        if limit < 0:
            raise CommandError("--limit must be 0 (no limit) or more.")
        if all:
            ids = [str(i) for i in ProductImage.objects.order_by("id").values_list("id", flat=True)]
        else:
            ids = selectors.images_needing_text(retry_failed=not skip_failed)
        if limit:
            ids = ids[:limit]
        if not ids:
            self.stdout.write("Every image's text is read already; nothing to do.")
            return
        self.stdout.write(f"Reading the text on {len(ids)} image(s)…")
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            if done % PROGRESS_EVERY == 0 or done == total:
                rate = done / max(time.monotonic() - started, 1e-9)
                self.stdout.write(f"  {done}/{total} images ({rate:.1f}/s)")

        try:
            outcome = images_text_read(ids, force=all, progress=progress)
        except OcrUnavailable as exc:
            raise CommandError(f"Cannot read text: {exc}") from exc
        self.stdout.write(
            f"Read {len(outcome.read)} image(s) in {outcome.seconds:.1f} s: {outcome.with_words} with text, "
            f"{len(outcome.read) - outcome.with_words} without; {len(outcome.failed)} failed, "
            f"{len(outcome.skipped)} already read, {len(outcome.missing)} gone meanwhile."
        )
        if outcome.failed:
            self.stdout.write("The failed ones carry their reason in the admin (Search › Image texts).")
        if outcome.text_index_error:
            # The usual case beside a running site on the embedded store: that process holds it.
            self.stdout.write(
                "The words are not in the text index yet (the vector store said: "
                f"{outcome.text_index_error.splitlines()[0]}); run `manage.py rebuild_text_index`."
            )
