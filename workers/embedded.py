"""The embedded default's background work: with no broker there is no Celery beat and no worker, so
the one web process runs the sweeper, the job runner, the search-photo retention and catalog syncs
itself, on daemon threads."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, connections

from workers.tasks import balance_answers, purge_search_photos, sweep_index

log = logging.getLogger(__name__)


def run_here(task: Any, *args: Any, propagate: bool = False) -> Any:
    """Run ``task`` in this thread and return its result (with ``propagate``, its exception is raised).

    An eager ``apply`` has finished when it returns, so fetching its result never waits. Celery's
    "Never call result.get() within a task!" guard is process-wide, though: it fired whenever another
    thread of this process was inside an eager task at that moment (an upload's indexing, an import),
    and a pass that had succeeded was logged as failed. It is turned off for this fetch alone."""
    return task.apply(args=args).get(propagate=propagate, disable_sync_subtasks=False)


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
                count = run_here(sweep_index)
                if count:
                    log.info("sweeper re-queued %s image(s)", count)
            except Exception:  # the loop must outlive any one failure
                log.exception("sweeper pass failed")
            try:
                # Celery beat runs it every 5 minutes with a broker; here each pass looks (one COUNT).
                run_here(balance_answers)
            except Exception:
                log.exception("balancing the answers failed")

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
                run_here(purge_search_photos, propagate=True)
            except Exception:  # the loop must outlive any one failure
                log.exception("search photo retention pass failed")
            finally:
                connection.close()  # not held open through the hour's sleep
            time.sleep(interval_s)

    threading.Thread(target=loop, name="lookalike-search-photo-retention", daemon=True).start()
    return True


# --- catalog sync ---------------------------------------------------------------------------------
# Kept apart from the sweeper above: one more daemon thread that runs queued catalog syncs (an API
# push, the admin's "sync now": never inside the request that queued them) and, once scheduling is
# on, starts due catalog sources, re-queues lost image downloads and purges products past retention,
# as Celery beat does with a broker.

_sync_runs: queue.Queue[int] = queue.Queue()
_sync_lock = threading.Lock()
_sync_thread: threading.Thread | None = None
_sync_scheduled = threading.Event()
_sync_interval_s = 60.0
PURGE_EVERY_S = 3600.0


def submit_sync_run(run_id: int) -> None:
    """Run a queued catalog sync on the background thread (started on first use)."""
    _sync_runs.put(run_id)
    _ensure_sync_thread()


def start_sync_scheduler(interval_s: float = 60.0) -> bool:
    """Also start due catalog sources every ``interval_s`` on that thread; once per process, and only
    when tasks run in-process (with a broker, Celery beat does it)."""
    global _sync_interval_s
    if not settings.CELERY_TASK_ALWAYS_EAGER or _sync_scheduled.is_set():
        return False
    _sync_interval_s = interval_s
    _sync_scheduled.set()
    _ensure_sync_thread()
    return True


def stop_sync_scheduler() -> None:
    """Stop starting due sources (queued runs still run); for tests and shutdown."""
    _sync_scheduled.clear()


def sync_runner_idle(timeout_s: float) -> bool:
    """Wait until every submitted sync has run (tests, shutdown); False if still busy after the timeout."""
    deadline = time.monotonic() + timeout_s
    while _sync_runs.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _ensure_sync_thread() -> None:
    global _sync_thread
    with _sync_lock:
        if _sync_thread is None or not _sync_thread.is_alive():
            _sync_thread = threading.Thread(target=_sync_loop, name="lookalike-catalog-sync", daemon=True)
            _sync_thread.start()


def _sync_loop() -> None:
    from catalog.services import activation
    from catalog.services import sync as catalog_sync
    from workers.tasks import sync_run

    next_check = next_purge = 0.0
    while True:
        # Unscheduled, the thread only runs what is submitted; it looks once a second whether
        # scheduling was switched on meanwhile.
        scheduled = _sync_scheduled.is_set()
        wait = max(0.05, next_check - time.monotonic()) if scheduled else 1.0
        try:
            run_id: int | None = _sync_runs.get(timeout=wait)
        except queue.Empty:
            run_id = None
        try:
            close_old_connections()
            if run_id is not None:
                run_here(sync_run, run_id)
            if _sync_scheduled.is_set() and time.monotonic() >= next_check:
                next_check = time.monotonic() + _sync_interval_s
                catalog_sync.sources_start_due()
                catalog_sync.fetches_requeue_stale()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + PURGE_EVERY_S
                    activation.products_purge_inactive()
        except Exception:  # the loop must outlive any one failure
            log.exception("catalog sync pass failed")
        finally:
            close_old_connections()
            if run_id is not None:
                _sync_runs.task_done()


# --- text on catalog images (OCR) -------------------------------------------------------------------
# One more daemon thread, at the lowest CPU priority the OS gives a thread, reading the text of
# uploaded images one message at a time (about 0.9 s per photo): never in the upload request, and
# behind searches for the CPU.

_text_batches: queue.Queue[list[str]] = queue.Queue()
_text_lock = threading.Lock()
_text_thread: threading.Thread | None = None
TEXT_THREAD_NICE = 19


_text_sweeping = threading.Event()
TEXT_SWEEP_S = 300.0
_text_sweep_s = TEXT_SWEEP_S
_text_next_sweep = 0.0


def submit_text_reading(image_ids: list[str]) -> None:
    """Read these images' text on the background thread (started on first use)."""
    _text_batches.put(list(image_ids))
    _ensure_text_thread()


def _ensure_text_thread() -> None:
    global _text_thread
    with _text_lock:
        if _text_thread is None or not _text_thread.is_alive():
            _text_thread = threading.Thread(target=_text_loop, name="lookalike-ocr-reader", daemon=True)
            _text_thread.start()


def text_reader_idle(timeout_s: float) -> bool:
    """Wait until every submitted batch is read (tests, shutdown); False if still busy after the timeout."""
    deadline = time.monotonic() + timeout_s
    while _text_batches.unfinished_tasks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _lower_own_priority() -> None:
    # On Linux a thread is its own scheduling entity: this lowers the reader, not the web process.
    # Another OS, or not permitted: it reads at normal priority.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TEXT_THREAD_NICE)


def start_text_sweep(interval_s: float = TEXT_SWEEP_S) -> bool:
    """Also look for images left unread every ``interval_s`` on the reader thread (Celery beat's
    lookalike.sweep_image_text with a broker); once per process, only when tasks run in-process."""
    global _text_sweep_s, _text_next_sweep
    if not settings.CELERY_TASK_ALWAYS_EAGER or not settings.OCR_ENABLED or _text_sweeping.is_set():
        return False
    _text_sweep_s = interval_s
    # Read by the thread, which may be running already (an upload started it).
    _text_next_sweep = time.monotonic() + interval_s
    _text_sweeping.set()
    _ensure_text_thread()
    return True


def stop_text_sweep() -> None:
    """Stop sweeping (submitted batches still run); for tests and shutdown."""
    _text_sweeping.clear()


def _text_loop() -> None:
    from search.services.image_text import images_due_for_text
    from workers.tasks import read_image_text

    global _text_next_sweep
    _lower_own_priority()
    while True:
        sweeping = _text_sweeping.is_set()
        wait = max(0.05, _text_next_sweep - time.monotonic()) if sweeping else 1.0
        try:
            image_ids: list[str] | None = _text_batches.get(timeout=wait)
        except queue.Empty:
            image_ids = None
        try:
            close_old_connections()
            if image_ids is None and _text_sweeping.is_set() and time.monotonic() >= _text_next_sweep:
                _text_next_sweep = time.monotonic() + _text_sweep_s
                due = images_due_for_text()
                if due:
                    log.info("text sweep: reading %s image(s) left unread", len(due))
                    run_here(read_image_text, due)
            elif image_ids is not None:
                run_here(read_image_text, image_ids)
        except Exception:  # the loop must outlive any one failure
            log.exception("reading text on images failed")
        finally:
            close_old_connections()
            if image_ids is not None:
                _text_batches.task_done()


# --- jobs -----------------------------------------------------------------------------------------


class JobRunner:
    """The embedded default's job runner: with no broker, the web process owns the vector store, so it
    runs the jobs. One thread per lane (search.jobs.registry.JobKind.lane): "store" runs the jobs that
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
        beat = threading.Thread(target=self._beat, name="lookalike-jobs-beat", daemon=True)
        beat.start()
        self._threads.append(beat)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop polling; a job in hand runs to its end first (within ``timeout``)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _beat(self) -> None:
        """Tell commands that this process runs jobs (search.jobs.records.runner_beat), on a thread of
        its own so that a long job in hand does not read as a dead runner."""
        from search.jobs import records as jobs

        try:
            while True:
                try:
                    close_old_connections()
                    jobs.runner_beat()
                except Exception:  # the loop must outlive any one failure
                    log.exception("job runner beat failed")
                if self._stop.wait(jobs.RUNNER_BEAT_S):
                    break
            jobs.runner_stopped()
        except Exception:
            log.exception("job runner: could not record its stop")
        finally:
            connections.close_all()

    def _loop(self, lane: str) -> None:
        from search.jobs import records as jobs

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
        from search.jobs import records as jobs
        from search.jobs.registry import job_kinds
        from search.jobs.runner import job_run
        from search.vector_store import VectorStoreLocked, vector_store

        kinds = [k.name for k in job_kinds().values() if k.lane == lane]
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
        job = job_run(job)
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


def start_background_work() -> bool:
    """Everything the serving process runs in the embedded default: the sweeper, the search-photo
    retention, the catalog sync scheduler, the sweep for unread photo text and the job runner, each once
    per process. Called where the
    WSGI application is built (config/wsgi.py), so ``manage.py runserver``, gunicorn and any other WSGI
    server run jobs alike; nothing with a broker (Celery's workers and beat do it)."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return False
    start_sweeper()
    start_search_photo_retention()
    start_sync_scheduler()
    start_text_sweep()  # images the reader missed (text on catalog images, OCR)
    start_job_runner()
    return True
