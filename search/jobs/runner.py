"""What runs a claimed job to its end, in whichever process claimed it (the embedded runner's threads,
a Celery worker, a command): the kind's runner function with a ``ctx`` that batches progress and log
writes, a heartbeat thread that marks the job alive and notices a cancel request, and the end state
with the error in one line."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Protocol

from django.db import DatabaseError, connections
from django.utils import timezone

from search.errors import SearchError
from search.jobs.records import job_end, job_log, job_progress, job_set_result
from search.jobs.registry import JobCancelled, JobFailed, Runner, kind_get
from search.models import Job, JobState

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
# Progress and log writes are batched to at most one UPDATE per this interval (plus one at the end):
# a chatty runner must not turn into a stream of database writes. Followers poll at about this rate.
WRITE_EVERY_S = 0.25


class JobListener(Protocol):
    """Who else hears a job run in this process (a command's console)."""

    def on_progress(self, done: int, total: int) -> None: ...
    def on_log(self, line: str) -> None: ...


class _Context:
    """The ``ctx`` a runner gets: batches its writes, and learns about cancellation from the heartbeat."""

    def __init__(self, job: Job, listener: JobListener | None) -> None:
        self.job_id = job.pk
        self.listener = listener
        self._done, self._total = job.done, job.total
        self._lines: list[str] = []
        self._dirty = False
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._cancel = threading.Event()

    def progress(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self._done = done
            if total is not None:
                self._total = total
            self._dirty = True
        if self.listener is not None:
            self.listener.on_progress(self._done, self._total)
        self._write_if_due()

    def log(self, line: str) -> None:
        new = [part.rstrip() for part in str(line).splitlines() if part.strip()]
        with self._lock:
            self._lines.extend(new)
        if self.listener is not None:
            for part in new:
                self.listener.on_log(part)
        self._write_if_due()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def set_result(self, result: dict[str, Any]) -> None:
        job_set_result(self.job_id, result)

    def _write_if_due(self) -> None:
        if time.monotonic() - self._last_write >= WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            dirty, self._dirty = self._dirty, False
            self._last_write = time.monotonic()
            try:
                if dirty:
                    job_progress(self.job_id, done=self._done, total=self._total)
                if lines and not job_log(self.job_id, lines):
                    self._lines[:0] = lines  # not visible from this thread's connection: keep them
            except DatabaseError:
                log.warning("job %s: could not record progress", self.job_id, exc_info=True)
                self._lines[:0] = lines


class _Heartbeat(threading.Thread):
    """Marks the job alive, flushes batched lines, and notices a cancel request."""

    def __init__(self, ctx: _Context) -> None:
        super().__init__(name=f"lookalike-job-{ctx.job_id}-heartbeat", daemon=True)
        self.ctx = ctx
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.wait(HEARTBEAT_S):
                try:
                    Job.objects.filter(pk=self.ctx.job_id, state=JobState.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                    if Job.objects.filter(pk=self.ctx.job_id, cancel_requested=True).exists():
                        self.ctx._cancel.set()
                    self.ctx.flush()
                except DatabaseError:
                    log.warning("job %s: heartbeat failed", self.ctx.job_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


def _expected(exc: BaseException) -> bool:
    """Errors whose message says it all (bad input, a refused operation, a store that is down); anything
    else is a bug and is logged with its traceback."""
    from catalog.errors import CatalogError
    from search.vector_store import VectorStoreError

    return isinstance(exc, SearchError | CatalogError | VectorStoreError | JobFailed | ValueError | OSError)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if _expected(exc) else f"{type(exc).__name__}: {text}"


def job_run(job: Job, *, listener: JobListener | None = None, run: Runner | None = None) -> Job:
    """Run a job this process has claimed, to its end: succeeded, failed (the error in one line) or
    cancelled. ``run`` replaces the kind's runner (a command training in its own process)."""
    spec = kind_get(job.kind)
    ctx = _Context(job, listener)
    beat = _Heartbeat(ctx)
    beat.start()
    try:
        result = (run or spec.run)(job, ctx)
    except JobCancelled:
        ctx.log("cancelled")
        ctx.flush()
        job_end(job.pk, JobState.CANCELLED, error="Cancelled.")
    except KeyboardInterrupt:  # Ctrl-C on a command running the job itself
        ctx.log("interrupted")
        ctx.flush()
        job_end(job.pk, JobState.CANCELLED, error="Interrupted.")
        raise
    except Exception as exc:
        if not _expected(exc):
            log.exception("job %s (%s) failed", job.pk, job.kind)
        message = _one_line(exc)
        ctx.log(f"failed: {message}")
        ctx.flush()
        job_end(job.pk, JobState.FAILED, error=message)
    else:
        ctx.flush()
        job_end(job.pk, JobState.SUCCEEDED, result=json.loads(json.dumps(result or {}, default=str)))
    finally:
        beat.stop()
    job.refresh_from_db()
    return job
