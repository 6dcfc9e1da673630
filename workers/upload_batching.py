"""Uploads share one queued indexing task, with a broker and a cache that the web and the workers share.

Each upload used to publish its own ``index_images`` message. The first task a worker ran took every
pending upload along (search/services/indexing.py::index_with_pending), and each later message found
its image indexed: on a burst of 200 uploads about 90 such tasks, 8-18 ms of worker time apiece, on the
cores the model needs (docs/benchmarks.md, "Ingest"). Now an upload publishes only when no task for
uploads is queued; while one is, the upload rides on it. The task clears the mark when it starts,
before it looks for pending uploads, so an upload that commits after that publishes a task of its own.

A lost message is covered twice: the mark expires after ``MARK_S`` (the next upload publishes again)
and the sweeper re-queues whatever stayed pending past its grace.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

MARK = "lookalike:uploads-task-queued"
# How long a queued task answers for the uploads after it (a message lost on its way stops
# answering for them after this).
MARK_S = 30
# A task looks for pending uploads added this long before it was published, too: a row is stamped
# when it is saved, and its transaction may commit a while later.
SLACK_S = 60.0
# Uploads come one to a few images at a time; a longer list (an import's batch) is published as it is.
MAX_IMAGES = 16


def applies(count: int) -> bool:
    """Whether uploads of ``count`` images may share a task: tasks go to a broker (not run in-process)
    and the cache is one the workers see (Redis: a per-process cache would never see the mark cleared)."""
    backend = settings.CACHES["default"]["BACKEND"]
    return (
        not settings.CELERY_TASK_ALWAYS_EAGER and backend.endswith(".RedisCache") and 0 < count <= MAX_IMAGES
    )


def publish_needed() -> float | None:
    """``since`` for the task to publish (epoch seconds), or None when a queued task takes this upload."""
    try:
        if not cache.add(MARK, 1, timeout=MARK_S):
            return None
    except (RedisError, OSError) as exc:  # no cache to agree on: the upload publishes, as before
        log.warning("upload batching off for this upload: %s", exc)
    return time.time() - SLACK_S


def task_started() -> None:
    """A task for uploads has started: the uploads from now on need a task of their own."""
    try:
        cache.delete(MARK)
    except (RedisError, OSError) as exc:  # the mark expires on its own
        log.warning("could not clear the upload-batching mark: %s", exc)
