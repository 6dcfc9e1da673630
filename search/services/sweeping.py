"""The repair path behind every fast path: images pending too long or failed are claimed by the
sweeper (Celery beat, or the embedded default's thread) with a growing backoff per image, and a
transient failure is recorded on the images it left pending."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from catalog.models import IndexStatus, ProductImage
from search import selectors


def backoff(attempts: int) -> timedelta:
    # 30 s, 1 min, 2 min, ... capped at 1 h: a broken image stops costing work, a blip heals fast.
    return timedelta(seconds=min(3600, settings.INDEX_PENDING_GRACE_S * 2 ** max(0, attempts - 1)))


def claim_for_sweep(now: datetime | None = None) -> list[str]:
    """The sweeper's pick: what is due, each pushed back by its growing backoff so an image still
    waiting in a long queue is not enqueued again every minute."""
    now = now or timezone.now()
    due = selectors.due_for_sweep(now)
    # One UPDATE per attempt count rather than per image: up to 5,000 images are due at once.
    by_attempts: dict[int, list[UUID]] = {}
    for pk, attempts in ProductImage.objects.filter(pk__in=due).values_list("pk", "index_attempts"):
        by_attempts.setdefault(attempts, []).append(pk)
    for attempts, pks in by_attempts.items():
        ProductImage.objects.filter(pk__in=pks).update(
            index_attempts=attempts + 1, next_attempt_at=now + backoff(attempts + 1)
        )
    return due


def note_transient_failure(image_ids: Iterable[str], error: str) -> None:
    """Record why indexing could not run; the images stay pending for the sweeper to retry."""
    now = timezone.now()
    for image in ProductImage.objects.filter(pk__in=list(image_ids)).exclude(
        index_status=IndexStatus.INDEXED
    ):
        ProductImage.objects.filter(pk=image.pk).update(
            last_error=error[:2000],
            index_attempts=image.index_attempts + 1,
            next_attempt_at=now + backoff(image.index_attempts + 1),
            updated_at=now,
        )
