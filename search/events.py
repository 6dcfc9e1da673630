"""What the search app announces, after commit. ``workers`` turns these into tasks
(workers/subscribers.py); the search app never imports the workers."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import Signal

# job_id: int — a job (search.models.Job) was queued; with a broker it becomes a Celery task. With
# none (the embedded default) nothing listens: the store owner's runner thread polls for it instead.
job_submitted = Signal()
# image_ids: list[str] — images the search app needs (re)indexed, e.g. after a rollback.
index_requested = Signal()


def announce(signal: Signal, **payload: Any) -> None:
    """Send ``signal`` once the current transaction commits (at once outside one); failures are logged."""
    transaction.on_commit(lambda: signal.send(sender=__name__, **payload), robust=True)
