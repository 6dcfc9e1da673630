"""The "train" kind: a training process at low priority (``manage.py train --job N``, JOB_TRAIN_NICE),
followed to its end: its output becomes the job's log, and it reports its epochs as the job's progress
(search/jobs/training.py). Training needs no vector store, so it runs on the embedded runner's
"process" lane, beside the store's jobs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from typing import Any

from django.conf import settings

from search.jobs.records import job_submit
from search.jobs.registry import JobCancelled, JobContext, JobFailed, job_kind
from search.jobs.training import (
    AFTER_EPOCHS,
    NOISE,
    check_train_params,
    child_environment,
    epochs_planned,
    parse_train_options,
)
from search.models import Job


def _failure(tail: deque[str], code: int) -> str:
    for line in reversed(tail):
        if line.startswith("CommandError: "):
            return line.removeprefix("CommandError: ")
    last = tail[-1] if tail else "no output"
    return f"The training process exited with status {code}: {last}"


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@job_kind("train", label="Train a candidate", needs_store=False, lane="process", check=check_train_params)
def run_train(job: Job, ctx: JobContext) -> dict[str, Any]:
    """The "train" runner: a training process at low priority (JOB_TRAIN_NICE), followed to its end;
    with ``then_promote``, a reindex job for the new candidate is submitted after it."""
    _, config = parse_train_options(job.params.get("options") or {})
    ctx.progress(0, epochs_planned(config) + len(AFTER_EPOCHS))
    command = [
        *(sys.executable, "-m", "django", "train", "--job", str(job.pk)),
        *("--nice", str(settings.JOB_TRAIN_NICE)),
    ]
    proc = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=child_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        start_new_session=True,  # its own process group: a cancel stops it and anything it started
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None  # started with stdout=PIPE
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=read, name=f"lookalike-job-{job.pk}-output", daemon=True).start()
    tail: deque[str] = deque(maxlen=40)
    try:
        while True:
            if ctx.cancelled():
                _stop(proc)
                raise JobCancelled()
            try:
                raw = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if raw is None:
                break
            line = raw.rstrip("\n").rsplit("\r", 1)[-1].rstrip()
            if line and not NOISE.match(line):
                tail.append(line)
                ctx.log(line)
        code = proc.wait()
    except BaseException:
        if proc.poll() is None:
            _stop(proc)
        raise
    if code != 0:
        raise JobFailed(_failure(tail, code))
    result = dict(Job.objects.get(pk=job.pk).result)
    if not result.get("model_version"):
        raise JobFailed("The training process ended without recording a candidate model.")
    total = epochs_planned(config) + len(AFTER_EPOCHS)
    ctx.progress(total, total)
    if job.params.get("then_promote"):
        follow = job_submit(
            kind="reindex",
            params={"model": result["model_version"]},
            requested_by=f"job {job.pk} (train, then promote)",
        )
        result["promote_job"] = follow.pk
        ctx.log(f"submitted job {follow.pk}: reindex and promote v{result['model_version']} through the gate")
    return result
