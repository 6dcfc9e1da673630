"""The job record's life cycle: long work (train, reindex, rollback, reconcile, import, index) is one
``Job`` row, submitted, claimed by one runner, given progress and log lines, finished, cancelled, and
recovered when its runner died.

Who runs a job is search/jobs/placement.py's answer; what runs it is search/jobs/runner.py; what each
kind does is its module in search/jobs/kinds/. ``job_submit`` announces ``events.job_submitted`` after
commit (with a broker, the workers turn it into the ``lookalike.run_job`` task; the embedded runner
polls instead). A running job's runner beats every ``runner.HEARTBEAT_S``; a job whose heartbeat stopped (its
process died) is re-queued when its kind can resume, else failed with a message saying so
(``job_recover_stale``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from search import events, selectors
from search.jobs.progress import merge_log_lines
from search.jobs.registry import JobError, job_kinds, kind_get
from search.models import Job, JobRunnerBeat, JobState

log = logging.getLogger(__name__)

LOG_LINES = 200  # the tail kept on the row: enough to see where a job is, and why it failed
LOG_LINE_CHARS = 500
MAX_ATTEMPTS = 3  # runs of a resumable job before a dead runner fails it instead of re-queueing


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


def job_end(job_id: int, state: str, *, result: dict[str, Any] | None = None, error: str = "") -> None:
    fields: dict[str, Any] = {"state": state, "finished_at": timezone.now(), "error": error[:4000]}
    if result is not None:
        fields["result"] = result
    Job.objects.filter(pk=job_id).update(**fields)


def job_set_result(job_id: int, result: dict[str, Any]) -> None:
    """Record a result while the job still runs: what a training process made, say."""
    Job.objects.filter(pk=job_id).update(result=json.loads(json.dumps(result, default=str)))


def job_progress(job_id: int, *, done: int, total: int | None = None) -> None:
    fields: dict[str, Any] = {"done": max(0, int(done)), "heartbeat_at": timezone.now()}
    if total is not None:
        fields["total"] = max(0, int(total))
    Job.objects.filter(pk=job_id, state=JobState.RUNNING).update(**fields)


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


# --- runners that died ---------------------------------------------------------------------------------


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
    return requeued
