"""The repair path behind every fast path: images pending too long or failed are claimed by the
sweeper (Celery beat, or the embedded default's thread) with a growing backoff per image, and a
transient failure is recorded on the images it left pending."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from catalog.services import index_state
from search import selectors


def backoff(attempts: int) -> timedelta:
    # 30 s, 1 min, 2 min, ... capped at 1 h: a broken image stops costing work, a blip heals fast.
    return timedelta(seconds=min(3600, settings.INDEX_PENDING_GRACE_S * 2 ** max(0, attempts - 1)))


def claim_for_sweep(now: datetime | None = None) -> list[str]:
    """The sweeper's pick: what is due, each pushed back by its growing backoff so an image still
    waiting in a long queue is not enqueued again every minute."""
    now = now or timezone.now()
    due = selectors.due_for_sweep(now)
    index_state.images_push_back(image_ids=due, now=now, retry_in=backoff)
    return due


def note_transient_failure(image_ids: Iterable[str], error: str) -> None:
    """Record why indexing could not run; the images stay pending for the sweeper to retry."""
    index_state.images_note_transient_failure(image_ids=image_ids, error=error, retry_in=backoff)
