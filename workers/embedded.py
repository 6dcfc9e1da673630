"""The embedded default's background work: with no broker there is no Celery beat and no worker, so
the one web process runs the sweeper, the jobs and catalog syncs itself, on daemon threads."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from workers.tasks import sweep_index

log = logging.getLogger(__name__)
_started = threading.Event()


def start_sweeper(interval_s: float = 60.0) -> bool:
    """Start the sweeper thread once per process, only when tasks run in-process."""
    if not settings.CELERY_TASK_ALWAYS_EAGER or _started.is_set():
        return False
    _started.set()
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                close_old_connections()
                count = sweep_index.apply().get(propagate=False)
                if count:
                    log.info("sweeper re-queued %s image(s)", count)
            except Exception:  # the loop must outlive any one failure
                log.exception("sweeper pass failed")

    threading.Thread(target=loop, name="lookalike-sweeper", daemon=True).start()
    return True
