"""Jobs: long work (train, reindex, rollback, reconcile, import, index) recorded in the database and
run by whoever may run it.

Who runs a job (``job_placement``):
- with a broker, a Celery worker: ``job_submit`` announces ``events.job_submitted`` after commit and
  workers/subscribers.py turns it into the ``lookalike.run_job`` task;
- with the embedded default, the web process, which owns the vector store: its runner threads
  (workers/embedded.py) poll for queued jobs;
- a management command that can open the store itself (nothing else owns it) runs the job in its own
  process with the same runner function (``job_submit(claim=True)`` then ``job_run``).

Each kind registers one runner function, ``run(job, ctx) -> result dict`` (search/services/job_kinds.py);
``ctx`` takes progress and log lines and says when the job was cancelled. The result's ``summary`` is the
line a command prints at the end. A running job's runner beats every ``HEARTBEAT_S``; a job whose
heartbeat stopped (its process died) is re-queued when its kind can resume, else failed with a message
saying so (``job_recover_stale``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import F
from django.utils import timezone

from search import events, selectors
from search.errors import SearchError
from search.models import Job, JobRunnerBeat, JobState

log = logging.getLogger(__name__)

LOG_LINES = 200  # the tail kept on the row: enough to see where a job is, and why it failed
LOG_LINE_CHARS = 500
HEARTBEAT_S = 5.0
MAX_ATTEMPTS = 3  # runs of a resumable job before a dead runner fails it instead of re-queueing
# Progress and log writes are batched to at most one UPDATE per this interval (plus one at the end):
# a chatty runner must not turn into a stream of database writes. Followers poll at about this rate.
WRITE_EVERY_S = 0.25


class JobError(SearchError):
    """A job that cannot be submitted or changed as asked; the message says why in one line."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("job_refused", message, field)


class JobCancelled(Exception):
    """Raised inside a runner (``ctx.check_cancelled``) when someone cancelled the job."""


class Rate:
    """Items per second since counting began, for a job's progress lines ("18.2 images/s") and bars.

    Counted from the first ``update`` (not from the job's start): a resumed job, or one that spent a
    while reading a manifest first, shows the pace of the work it is doing now.
    """

    def __init__(self, unit: str = "images", *, every_s: float = 10.0) -> None:
        self.unit = unit
        self.every_s = every_s
        self._start: tuple[float, int] | None = None
        self._last: tuple[float, int] | None = None
        self._said = 0.0

    def update(self, count: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = (now, count)
        self._last = (now, count)

    def per_s(self) -> float | None:
        if self._start is None or self._last is None or self._last[0] <= self._start[0]:
            return None
        return (self._last[1] - self._start[1]) / (self._last[0] - self._start[0])

    def text(self) -> str:
        rate = self.per_s()
        return f"{rate:.1f} {self.unit}/s" if rate is not None else f"- {self.unit}/s"

    @property
    def count(self) -> int:
        return self._last[1] if self._last is not None else 0

    def due_soon(self) -> bool:
        """A line would be due if the count moved: time to measure it (a query, say), not before."""
        return time.monotonic() - self._said >= self.every_s

    def due(self) -> bool:
        """True at most once per ``every_s``: when a runner should log a progress line."""
        now = time.monotonic()
        if now - self._said < self.every_s or self.per_s() is None:
            return False
        self._said = now
        return True


class JobContext(Protocol):
    job_id: int

    def progress(self, done: int, total: int | None = None) -> None: ...
    def log(self, line: str) -> None: ...
    def cancelled(self) -> bool: ...
    def check_cancelled(self) -> None: ...
    def set_result(self, result: dict[str, Any]) -> None: ...


Runner = Callable[[Job, JobContext], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    run: Runner
    # Runs where the vector store is: its owner (the embedded web process) or a Celery worker.
    needs_store: bool = True
    # Safe to run again after its runner died (idempotent, or resumes like a reindex from its cursor).
    resumable: bool = False
    # The embedded runner's thread: "store" runs one job at a time in the process that owns the store;
    # "process" is for jobs that start their own process (training), so they never hold up the rest.
    lane: str = "store"
    # Normalises and checks params at submission (raises JobError), so a bad request fails at once.
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # With a broker, run in the command that asked rather than on a worker (an import reads a file the
    # workers may not see; its indexing still goes to them).
    local_with_broker: bool = False
    # Called when a dead runner's job is given up, to release what it held (a reindex's ReindexJob).
    on_abandon: Callable[[Job, str], None] | None = None
    # What ``done`` counts, for the pace a console bar shows ("images": images/s); "" shows none.
    unit: str = ""


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, label: str, **options: Any) -> Callable[[Runner], Runner]:
    """Register ``run`` as the runner of jobs of kind ``name`` (a decorator)."""

    def register(run: Runner) -> Runner:
        _KINDS[name] = JobKind(name=name, label=label, run=run, **options)
        return run

    return register


def job_kinds() -> dict[str, JobKind]:
    from search.services import job_kinds as _registered  # noqa: F401  (registers every kind)

    return _KINDS


def kind_get(name: str) -> JobKind:
    spec = job_kinds().get(name)
    if spec is None:
        raise JobError(f"Unknown job kind {name!r}; known: {', '.join(sorted(job_kinds()))}.", "kind")
    return spec


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:200]


# --- live runners: a command that hands a job over asks whether anyone will run it --------------------

# A job runner beats this often, from a thread of its own (a long job in hand does not stop it); one not
# heard from for RUNNER_LIVE_S has stopped or died.
RUNNER_BEAT_S = 5.0  # as often as a running job's heartbeat: no more writes than that costs
RUNNER_LIVE_S = 20.0


def _process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_beat() -> None:
    """This process runs jobs, as of now."""
    if not JobRunnerBeat.objects.filter(runner=_process_id()).update(beat_at=timezone.now()):
        JobRunnerBeat.objects.update_or_create(runner=_process_id(), defaults={"beat_at": timezone.now()})


def runner_stopped() -> None:
    """This process no longer runs jobs (its runner stopped); old beats of dead processes go too."""
    stale = timezone.now() - timedelta(seconds=10 * RUNNER_LIVE_S)
    JobRunnerBeat.objects.filter(runner=_process_id()).delete()
    JobRunnerBeat.objects.filter(beat_at__lt=stale).delete()


# --- submit, claim, finish ------------------------------------------------------------------------


def job_submit(
    *, kind: str, params: dict[str, Any] | None = None, requested_by: str = "", claim: bool = False
) -> Job:
    """Queue a job (announced after commit, for a broker's workers; the embedded runner polls), or with
    ``claim`` create it already running in this process, which then calls ``job_run``."""
    spec = kind_get(kind)
    params = dict(params or {})
    if spec.check is not None:
        params = spec.check(params)
    try:
        params = json.loads(json.dumps(params))
    except (TypeError, ValueError) as exc:
        raise JobError(f"Job parameters must be JSON values: {exc}.", "params") from exc
    now = timezone.now()
    running = {"state": JobState.RUNNING, "runner": runner_id(), "started_at": now, "heartbeat_at": now}
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            params=params,
            requested_by=requested_by[:150],
            **(dict(running, attempts=1) if claim else {}),
        )
        if not claim:
            events.announce(events.job_submitted, job_id=job.pk)
    return job


def job_claim(*, job_id: int | None = None, kinds: Iterable[str] | None = None) -> Job | None:
    """Take a queued job, that one or the oldest of ``kinds``, for this runner. None when there is none
    or another runner took it first: the conditional UPDATE is the lock (only one matches the row)."""
    kinds = list(kinds) if kinds is not None else None
    for _ in range(5):  # lost races only: another runner took the oldest one first
        pk = job_id if job_id is not None else selectors.next_queued_job(kinds=kinds)
        if pk is None:
            return None
        now = timezone.now()
        won = Job.objects.filter(pk=pk, state=JobState.QUEUED).update(
            state=JobState.RUNNING,
            runner=runner_id(),
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
        )
        if won:
            return Job.objects.get(pk=pk)
        if job_id is not None:
            return None
    return None


def _end(job_id: int, state: str, *, result: dict[str, Any] | None = None, error: str = "") -> None:
    fields: dict[str, Any] = {"state": state, "finished_at": timezone.now(), "error": error[:4000]}
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).update(**fields)


def job_set_result(job_id: int, result: dict[str, Any]) -> None:
    """Record a result while the job still runs: what a resumed run needs (a reindex's ReindexJob), or
    what a training process made."""
    Job.objects.filter(pk=job_id).update(result=json.loads(json.dumps(result, default=str)))


def job_progress(job_id: int, *, done: int, total: int | None = None) -> None:
    fields: dict[str, Any] = {"done": max(0, int(done)), "heartbeat_at": timezone.now()}
    if total is not None:
        fields["total"] = max(0, int(total))
    Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(**fields)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A progress bar's refresh, as a pipe delivers it (each redraw a line of its own): tqdm's
# "desc:  40%|####      | 8/20 [00:01<00:02, 7.5img/s]" and Keras's "  8/17 ━━━━━━━━━━━ 2s 200ms/step".
_TQDM_BAR = re.compile(r"^(?P<desc>.*?)\s*\d{1,3}%\|.*\|\s*[\d.]+[kMG]?/(?P<total>[\d.]+[kMG]?)")
_KERAS_BAR = re.compile(r"^\s*\d+/(?P<total>\d+)\s+━")


def progress_bar_key(line: str) -> tuple[str, ...] | None:
    """Which progress bar a line is a refresh of (its kind, label and total), or None for any other line.
    Two refreshes of one bar have the same key."""
    plain = _ANSI.sub("", line)
    if m := _TQDM_BAR.match(plain):
        return ("tqdm", m["desc"].strip(), m["total"])
    if m := _KERAS_BAR.match(plain):
        return ("keras", m["total"])
    return None


def merge_log_lines(kept: list[str], lines: list[str]) -> tuple[list[str], int]:
    """``kept`` with ``lines`` after it, where a refresh of the progress bar on the line just before
    replaces that line instead of adding one: a log keeps only a bar's latest state, not each redraw.
    Returns the lines and how many were added (replacements add none)."""
    merged, added = list(kept), 0
    for line in lines:
        key = progress_bar_key(line)
        if key is not None and merged and progress_bar_key(merged[-1]) == key:
            merged[-1] = line
        else:
            merged.append(line)
            added += 1
    return merged, added


def job_log(job_id: int, lines: list[str]) -> bool:
    """Append lines to the job's log tail (a progress bar's refreshes collapsed to its latest state);
    False when the row is not visible (nothing was written)."""
    lines = [line[:LOG_LINE_CHARS] for line in lines]
    if not lines:
        return True
    row = Job.objects.filter(pk=job_id).values("log", "log_lines").first()
    if row is None:
        return False
    merged, added = merge_log_lines(row["log"].splitlines(), lines)
    Job.objects.filter(pk=job_id).update(
        log="\n".join(merged[-LOG_LINES:]), log_lines=row["log_lines"] + added
    )
    return True


def job_cancel(*, job_id: int, by: str = "") -> Job:
    """Cancel a queued job at once; ask a running one to stop (its runner checks between steps)."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise JobError(f"No job {job_id}.", "job_id")
    who = f" by {by}" if by else ""
    if Job.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.CANCELLED, finished_at=timezone.now(), error="Cancelled before it started."
    ):
        job_log(job_id, [f"cancelled{who} before it started"])
    elif Job.objects.filter(pk=job_id, state=JobState.RUNNING, cancel_requested=False).update(
        cancel_requested=True
    ):
        job_log(job_id, [f"cancel requested{who}; stopping at the next step"])
    job.refresh_from_db()
    return job


# --- running ----------------------------------------------------------------------------------------


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


class JobFailed(Exception):
    """A runner's way to fail its job with a message (what a training process said, say)."""


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
        _end(job.pk, JobState.CANCELLED, error="Cancelled.")
    except KeyboardInterrupt:  # Ctrl-C on a command running the job itself
        ctx.log("interrupted")
        ctx.flush()
        _end(job.pk, JobState.CANCELLED, error="Interrupted.")
        _abandon(spec, job, "Interrupted.")
        raise
    except Exception as exc:
        if not _expected(exc):
            log.exception("job %s (%s) failed", job.pk, job.kind)
        message = _one_line(exc)
        ctx.log(f"failed: {message}")
        ctx.flush()
        _end(job.pk, JobState.FAILED, error=message)
        _abandon(spec, job, message)
    else:
        ctx.flush()
        _end(job.pk, JobState.SUCCEEDED, result=json.loads(json.dumps(result or {}, default=str)))
    finally:
        beat.stop()
    job.refresh_from_db()
    return job


def _abandon(spec: JobKind, job: Job, error: str) -> None:
    """Release what a job that will not go on held (a reindex's ReindexJob, so a new one may start)."""
    if spec.on_abandon is not None:
        job.refresh_from_db()
        spec.on_abandon(job, error)


# --- where a job runs, and runners that died ------------------------------------------------------------


def job_placement(kind: str) -> str:
    """``"here"`` when this process may run a job of ``kind`` now, ``"owner"`` when it must hand it over:
    to the broker's workers, or to the process that holds the embedded vector store."""
    from search.vector_store import VectorStoreLocked, vector_store

    spec = kind_get(kind)
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return "here" if spec.local_with_broker else "owner"
    if not spec.needs_store:
        return "here"
    try:
        vector_store()
    except VectorStoreLocked:
        return "owner"
    return "here"


def job_recover_stale(*, now: datetime | None = None) -> list[int]:
    """Jobs left running by a runner that stopped beating: re-queue those that can resume (up to
    MAX_ATTEMPTS runs), fail the rest with a message saying what happened. Returns the re-queued ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_STALE_AFTER_S)
    requeued = []
    for job in selectors.stale_jobs(cutoff):
        spec = job_kinds().get(job.kind)
        seen = (job.heartbeat_at or job.started_at or job.created_at).strftime("%Y-%m-%d %H:%M:%S")
        what = f"the process running it ({job.runner or 'unknown'}) stopped answering at {seen} UTC"
        same = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, heartbeat_at=job.heartbeat_at)
        if spec is not None and spec.resumable and job.attempts < MAX_ATTEMPTS and not job.cancel_requested:
            with transaction.atomic():
                if same.update(state=JobState.QUEUED, runner=""):
                    job_log(job.pk, [f"{what}; queued again (run {job.attempts + 1} of {MAX_ATTEMPTS})"])
                    events.announce(events.job_submitted, job_id=job.pk)
                    requeued.append(job.pk)
            continue
        if job.cancel_requested:
            reason = "it had been asked to stop"
        elif spec is not None and spec.resumable:
            reason = f"given up after {job.attempts} runs"
        else:
            reason = "this kind of job cannot resume; submit it again"
        error = f"Stopped: {what}; {reason}."
        if same.update(state=JobState.FAILED, finished_at=now, error=error):
            job_log(job.pk, [error])
            if spec is not None:
                _abandon(spec, job, error)
    return requeued
