"""The embedded default's background work: with no broker there is no Celery beat and no worker, so
the one web process runs the sweeper and the jobs itself, on daemon threads."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

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


class JobRunner:
    """The embedded default's job runner: with no broker, the web process owns the vector store, so it
    runs the jobs. One thread per lane (search.services.jobs.JobKind.lane): "store" runs the jobs that
    need the store, one at a time; "process" runs those that start their own process (training), so a
    long training never holds up an import or a promotion. Each thread polls for the oldest queued job
    of its lane (an indexed query, about once a second) and, now and then, re-queues or fails jobs
    whose runner died."""

    LANES = ("store", "process")
    RECOVER_EVERY_S = 15.0

    def __init__(self, poll_s: float = 1.0) -> None:
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._locked_warned = False

    def start(self) -> JobRunner:
        for lane in self.LANES:
            thread = threading.Thread(
                target=self._loop, args=(lane,), name=f"lookalike-jobs-{lane}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop polling; a job in hand runs to its end first (within ``timeout``)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self, lane: str) -> None:
        from search.services import jobs

        last_recover = 0.0
        try:
            while not self._stop.is_set():
                ran = False
                try:
                    close_old_connections()
                    if lane == "store" and time.monotonic() - last_recover > self.RECOVER_EVERY_S:
                        last_recover = time.monotonic()
                        jobs.job_recover_stale()
                    ran = self.run_one(lane)
                except Exception:  # the loop must outlive any one failure
                    log.exception("job runner (%s) pass failed", lane)
                if not ran:
                    self._stop.wait(self.poll_s)
        finally:
            connections.close_all()

    def run_one(self, lane: str) -> bool:
        """Claim and run the oldest queued job of ``lane``; False when there was none to run."""
        from search.services import jobs
        from search.vector_store import VectorStoreLocked, vector_store

        kinds = [k.name for k in jobs.job_kinds().values() if k.lane == lane]
        if lane == "store":
            try:
                vector_store()  # this process must own the store to run its jobs
            except VectorStoreLocked as exc:
                if not self._locked_warned:
                    log.warning("job runner waits: %s", exc)
                    self._locked_warned = True
                return False
        job = jobs.job_claim(kinds=kinds)
        if job is None:
            return False
        log.info("running job %s (%s)", job.pk, job.kind)
        job = jobs.job_run(job)
        log.info("job %s (%s) %s", job.pk, job.kind, job.state)
        return True


_runner: JobRunner | None = None


def start_job_runner(poll_s: float = 1.0) -> bool:
    """Start the job runner once per process, only when there is no broker (the embedded default)."""
    global _runner
    if not settings.CELERY_TASK_ALWAYS_EAGER or _runner is not None:
        return False
    _runner = JobRunner(poll_s).start()
    return True
