"""Reading the text on catalog images (OCR) and recording it in ``search.ImageText``.

Runs in the background only: the ``lookalike.read_image_text`` task on the ``text`` queue with a
broker, the embedded default's low-priority thread without one (workers/), and
``manage.py read_image_text`` for a catalog that existed before. Never inside an upload request: one
photo takes about 0.9 s on a core.

Idempotent: an image already read from the same bytes by the same engine is skipped, so a replayed
task or a second command run does nothing; a row for other bytes or another engine is read again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from catalog.models import ProductImage
from catalog.storage import read_image
from ml import ocr
from ml.preprocess import ImageRejected, load_image
from ml.text_tokens import tokenize
from search import selectors
from search.models import ImageText, TextStatus
from search.services.text_index import sync_products_text_quietly

log = logging.getLogger(__name__)


@dataclass
class TextReadOutcome:
    read: list[str] = field(default_factory=list)  # image ids read now
    with_words: int = 0  # of those, how many had any text
    skipped: list[str] = field(default_factory=list)  # already read from these bytes
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # no such image (deleted meanwhile)
    # Why the words read did not reach the text index (the store down, or held by another process).
    text_index_error: str | None = None
    seconds: float = 0.0


def is_current(row: ImageText | None, image: ProductImage) -> bool:
    return row is not None and row.sha256 == image.sha256 and row.engine == ocr.ENGINE


def _read(image: ProductImage) -> tuple[list[ocr.Word], float]:
    picture, _ = load_image(
        read_image(image.file.name), max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_IMAGE_PIXELS
    )
    ocr.engine()  # built once per process (about 1 s): not this image's reading time
    started = time.perf_counter()
    words = ocr.read_words(picture, budget_s=settings.OCR_BUDGET_S)
    return words, time.perf_counter() - started


def image_text_read(*, image: ProductImage, force: bool = False) -> ImageText | None:
    """Read ``image``'s text and record it; None when it was already read from these bytes (unless
    ``force``). An unreadable file or a reading past its budget is recorded as failed, with the reason;
    an engine that cannot run at all raises ``ocr.OcrUnavailable`` (nothing is recorded)."""
    row = ImageText.objects.filter(image_id=image.pk).first()
    if not force and is_current(row, image):
        return None
    ocr.configure(threads=settings.OCR_THREADS)
    values: dict[str, Any] = {"sha256": image.sha256, "engine": ocr.ENGINE, "read_at": timezone.now()}
    try:
        words, seconds = _read(image)
    except (ImageRejected, OSError, ocr.OcrTimeout) as exc:
        log.warning("reading the text of image %s failed: %s", image.pk, exc)
        values.update(
            status=TextStatus.FAILED,
            words=[],
            text="",
            tokens=[],
            seconds=0.0,
            error=f"{type(exc).__name__}: {exc}"[:500],
            attempts=(row.attempts if row is not None else 0) + 1,
        )
    else:
        text = "\n".join(word.text for word in words)
        values.update(
            status=TextStatus.READ,
            words=[word.as_dict() for word in words],
            text=text,
            tokens=tokenize(text),
            seconds=round(seconds, 3),
            error="",
            attempts=0,
        )
    # update_or_create, not a bare create: a second reader of the same image (a replayed task) wins
    # the row with the same values instead of failing on the primary key.
    saved, _ = ImageText.objects.update_or_create(image_id=image.pk, defaults=values)
    return saved


def images_text_read(
    image_ids: Iterable[str],
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TextReadOutcome:
    """Read the text of each image in ``image_ids`` that needs it, one at a time."""
    ids = [str(i) for i in image_ids]
    outcome = TextReadOutcome()
    started = time.perf_counter()
    images = {str(image.pk): image for image in ProductImage.objects.filter(pk__in=ids)}
    for done, image_id in enumerate(ids, start=1):
        image = images.get(image_id)
        if image is None:
            outcome.missing.append(image_id)
        else:
            row = image_text_read(image=image, force=force)
            if row is None:
                outcome.skipped.append(image_id)
            elif row.status == TextStatus.FAILED:
                outcome.failed.append(image_id)
            else:
                outcome.read.append(image_id)
                outcome.with_words += bool(row.words)
        if progress is not None:
            progress(done, len(ids))
    if outcome.read:
        # The words just read join their products' text in the text index.
        read = set(outcome.read)
        outcome.text_index_error = sync_products_text_quietly({images[i].product_id for i in read})
    outcome.seconds = time.perf_counter() - started
    return outcome


# The repair path: images the fast path missed (a broker that was down, a reader that died, an engine
# that could not load) are picked up by the sweep, a batch at a time, after a grace period; a failed
# image is tried again SWEEP_RETRY_AFTER later, up to SWEEP_MAX_ATTEMPTS times (then only
# ``manage.py read_image_text`` tries it).
SWEEP_GRACE = timedelta(minutes=5)
SWEEP_RETRY_AFTER = timedelta(hours=1)
SWEEP_MAX_ATTEMPTS = 3
SWEEP_BATCH = 50  # under a minute of reading on one core


def images_due_for_text(now: datetime | None = None) -> list[str]:
    now = now or timezone.now()
    return selectors.images_needing_text(
        max_attempts=SWEEP_MAX_ATTEMPTS,
        added_before=now - SWEEP_GRACE,
        failed_before=now - SWEEP_RETRY_AFTER,
        limit=SWEEP_BATCH,
    )
