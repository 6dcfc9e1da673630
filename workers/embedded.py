"""The embedded default's background work: with no broker there is no Celery beat and no worker, so
the one web process runs the sweeper itself on a daemon thread."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection

from workers.tasks import purge_search_photos, sweep_index

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


_retention_started = threading.Event()


def start_search_photo_retention(interval_s: float = 3600.0) -> bool:
    """Delete expired shoppers' photos hourly on a thread, once per process, only without a broker (with
    one, Celery beat schedules lookalike.purge_search_photos)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER or _retention_started.is_set():
        return False
    _retention_started.set()

    def loop() -> None:
        while True:
            try:
                close_old_connections()
                purge_search_photos.apply().get(propagate=True)
            except Exception:  # the loop must outlive any one failure
                log.exception("search photo retention pass failed")
            finally:
                connection.close()  # not held open through the hour's sleep
            time.sleep(interval_s)

    threading.Thread(target=loop, name="lookalike-search-photo-retention", daemon=True).start()
    return True
