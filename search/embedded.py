"""The embedded default's background repair: with no broker there is no Celery beat, so the one
web process runs the sweeper itself on a daemon thread."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

log = logging.getLogger(__name__)
_started = threading.Event()


def start_sweeper(interval_s: float = 60.0) -> bool:
    """Start the sweeper thread once per process, only when tasks run in-process."""
    if not settings.CELERY_TASK_ALWAYS_EAGER or _started.is_set():
        return False
    _started.set()
    stop = threading.Event()

    def loop() -> None:
        from django.db import close_old_connections

        from workers.tasks import sweep_index

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


def warm_up() -> None:
    """Load the active model and open the store before the first request, not during it (~10 s)."""
    from search.model_versions import active_model
    from search.runtime import embedder_for, vector_store

    try:
        vector_store()
        model = active_model()
        if model is not None:
            embedder = embedder_for(model)
            import numpy as np

            embedder.embed(np.zeros((1, model.image_size, model.image_size, 3), np.uint8))
    except Exception:  # readiness (/readyz) reports what is wrong; serving must still start
        log.exception("warm-up failed")
