"""Every queue, in one place: its name, and which tasks it carries. Indexing new uploads never waits
behind a bulk reindex.

The queues are declared (``TASK_QUEUES``, Celery's ``task_queues``), so a plain
``celery -A config worker`` consumes all of them; ``-Q index`` (or ``-Q reindex``) still splits them
over separate worker deployments.
"""

from enum import StrEnum

from kombu import Queue as KombuQueue


class Queue(StrEnum):
    INDEX = "index"  # new and changed images: latency-sensitive
    REINDEX = "reindex"  # bulk backfills of a new model version, and the other long jobs (train, import)
    DEFAULT = "default"  # payload syncs, deletes, sweeps
    SYNC = "sync"  # catalog sync: reading feeds and downloading their images (network-bound, long)
    # Reading the text on catalog images (OCR, about 0.9 s per photo on a core): low priority, so a
    # deployment can give it one low-concurrency worker (-Q text -c 1) beside indexing.
    TEXT = "text"


TASK_QUEUES = tuple(KombuQueue(q.value, routing_key=q.value) for q in Queue)
TASK_ROUTES = {
    "lookalike.index_images": {"queue": Queue.INDEX.value},
    "lookalike.sync_run": {"queue": Queue.SYNC.value},
    "lookalike.fetch_sync_images": {"queue": Queue.SYNC.value},
    "lookalike.run_job": {"queue": Queue.REINDEX.value},
    "lookalike.read_image_text": {"queue": Queue.TEXT.value},
}
