"""How a management command runs a job: in this process when it may (nothing else owns the vector
store), else handed to whoever owns it (the web process's runner, or the broker's workers) and followed
here with a progress bar, the job's log lines as they come, and its summary at the end."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from search import selectors
from search.jobs.placement import job_placement, placement
from search.jobs.progress import Rate
from search.jobs.records import RUNNER_LIVE_S, job_submit
from search.jobs.registry import JobError, kind_get
from search.jobs.runner import job_run
from search.models import Job, JobState
from search.vector_store import VectorStoreError

POLL_S = 0.5
# A handed-over job still queued after this long: say who should be running it.
WAITING_HINT_S = 10.0
# ... and after this long, with no live job runner (embedded default), say what to do.
NO_RUNNER_CHECK_S = 2.0


def admin_path(job: Job) -> str:
    return f"/admin/search/job/{job.pk}/change/"


# The bar's own rate would divide everything done (a resumed job's earlier runs too) by this bar's
# age; the postfix shows the job's pace instead (search/jobs/progress.py Rate), in the kind's unit.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"


class ConsoleListener:
    """A job running in this process, shown as it goes: a bar with the pace (images/s), and its log
    lines above it."""

    def __init__(self, command: BaseCommand, desc: str, unit: str = "") -> None:
        self.command = command
        self.bar = tqdm(total=0, desc=desc, disable=None, dynamic_ncols=True, bar_format=BAR_FORMAT)
        self.rate = Rate(unit) if unit else None

    def on_progress(self, done: int, total: int) -> None:
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.n = done
        if self.rate is not None:
            self.rate.update(done)
            self.bar.set_postfix_str(self.rate.text(), refresh=False)
        self.bar.refresh()

    def on_log(self, line: str) -> None:
        with self.bar.external_write_mode():
            self.command.stdout.write(line)

    def close(self) -> None:
        self.bar.close()


def follow(command: BaseCommand, job: Job, *, who: str) -> Job:
    """Print a handed-over job's log and progress until it ends (Ctrl-C stops following, not the job)."""
    listener = ConsoleListener(command, job.kind, kind_get(job.kind).unit)
    seen = 0
    started = time.monotonic()
    hinted = checked = False
    try:
        while True:
            current = selectors.job_get(job.pk)
            if current is None:
                raise CommandError(f"Job {job.pk} disappeared.")
            job = current
            new = job.log_lines - seen
            if new > 0:
                for line in job.log.splitlines()[-new:]:
                    listener.on_log(line)
                seen = job.log_lines
            listener.on_progress(job.done, job.total)
            if job.finished:
                return job
            waited = time.monotonic() - started
            if job.state == JobState.QUEUED and not checked and waited > NO_RUNNER_CHECK_S:
                checked = True
                if advice := no_runner_advice(job):
                    listener.on_log(advice)
                    hinted = True
            if job.state == JobState.QUEUED and not hinted and waited > WAITING_HINT_S:
                listener.on_log(f"(still queued, waiting for {who})")
                hinted = True
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        listener.close()
        raise CommandError(
            f"Stopped following; job {job.pk} goes on ({admin_path(job)}; cancel it there)."
        ) from None
    finally:
        listener.close()


def report(command: BaseCommand, job: Job) -> Job:
    """The job's summary line; a failed or cancelled job is a one-line CommandError. Nothing for a job
    that has not ended (queued with --no-wait)."""
    if not job.finished:
        return job
    if job.state == JobState.FAILED:
        raise CommandError(f"Job {job.pk} ({job.kind}) failed: {job.error}")
    if job.state == JobState.CANCELLED:
        raise CommandError(f"Job {job.pk} ({job.kind}) was cancelled.")
    summary = job.result.get("summary") or f"Job {job.pk} ({job.kind}) succeeded."
    style = command.style.SUCCESS if job.result.get("ok", True) else command.style.WARNING
    command.stdout.write(style(summary))
    return job


def run_job_command(
    command: BaseCommand,
    *,
    kind: str,
    params: dict[str, Any] | None = None,
    no_wait: bool = False,
    requested_by: str = "",
    summary: bool = True,
) -> Job:
    """Run a job of ``kind`` here when this process may, else hand it to the owner and follow it;
    with ``no_wait`` queue it and return after printing its id. ``summary=False`` leaves the closing
    ``report`` to the caller (to print something before it)."""
    requested_by = requested_by or f"manage.py {type(command).__module__.rsplit('.', 1)[-1]}"
    try:
        placement = "owner" if no_wait else job_placement(kind)
        if placement == "here":
            job = job_submit(kind=kind, params=params, requested_by=requested_by, claim=True)
            listener = ConsoleListener(command, kind, kind_get(kind).unit)
            try:
                job = job_run(job, listener=listener)
            finally:
                listener.close()
            return report(command, job) if summary else job
        job = job_submit(kind=kind, params=params, requested_by=requested_by)
    except (JobError, VectorStoreError) as exc:
        raise CommandError(str(exc)) from exc
    who = owner_description()
    command.stdout.write(f"Job {job.pk} ({kind}) queued for {who}.")
    if no_wait:
        command.stdout.write(f"Not waiting; follow it in the admin at {admin_path(job)}")
        return job
    job = follow(command, job, who=who)
    return report(command, job) if summary else job


def no_runner_advice(job: Job) -> str | None:
    """What to do when a job was handed over and no live process runs jobs (the embedded default: only
    the web server does, and the vector store is held by some other process); None while one does, and
    with a broker (its workers are not watched from here)."""
    if not placement().embedded or selectors.live_job_runners(within_s=RUNNER_LIVE_S):
        return None
    return (
        f"No process is running jobs: job {job.pk} stays queued. Start the web server "
        "(`manage.py runserver`, or gunicorn with platform/gunicorn.embedded.conf.py) and it runs it; "
        "or stop the process that holds the vector store and run this command again. Ctrl-C stops "
        "waiting here (the job stays queued; cancel it in the admin)."
    )


def owner_description() -> str:
    return placement().owner
