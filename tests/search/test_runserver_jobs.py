"""Jobs beside `manage.py runserver`: the process that serves runs the embedded job runner whatever the
WSGI server (config/wsgi.py starts it), so a command run beside it hands its job over and sees it run;
and a command whose job nobody will run (the store held by a process that runs no jobs) says so within
seconds, with what to do, instead of waiting in silence."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from search import selectors
from search.jobs.training import database_url
from search.models import Job, JobState
from search.vector_store import vector_store
from tests.support.celery_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": database_url(),
        "VECTOR_STORE_PATH": str(settings.VECTOR_STORE_PATH),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MODELS_DIR": str(settings.MODELS_DIR),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONUNBUFFERED": "1",  # each line as it is written: the test reads them as they come
    }
    env.pop("CELERY_BROKER_URL", None)
    return env


def _lines(proc: subprocess.Popen) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_command_beside_runserver_has_its_job_run(vector_store_path, media_root) -> None:
    """This test process leaves the store alone; `manage.py runserver` takes it for its job runner."""
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{_free_port()}", "--noreload"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _lines(server)
        wait_until(lambda: selectors.live_job_runners(within_s=10) > 0, 90, "runserver's job runner")
        time.sleep(2)  # its store lane polls once a second, and opens the store on its first poll
        done = subprocess.run(
            [sys.executable, "manage.py", "reconcile_index"],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        server.wait(30)
    log = "".join(output.queue)
    assert done.returncode == 0, (done.stdout, done.stderr, log)
    assert "(reconcile) queued for the process that owns the vector store" in done.stdout, done.stdout
    job = Job.objects.get(kind="reconcile")
    assert job.state == JobState.SUCCEEDED
    assert job.runner.split(":")[1] == str(server.pid) and job.runner.endswith(":lookalike-jobs-store")
    assert "No process is running jobs" not in done.stdout


def test_a_command_whose_job_nobody_runs_says_what_to_do_within_seconds(
    vector_store_path, media_root
) -> None:
    """The store is held by this process, which runs no jobs (as runserver did before it started the
    runner): the command hands its job over, and says within seconds that nobody will run it."""
    vector_store()
    command = subprocess.Popen(
        [sys.executable, "manage.py", "reconcile_index"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        lines = _lines(command)
        deadline = time.monotonic() + 90  # TensorFlow's import in the command is most of it
        queued_at = None
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if "queued for" in line:
                queued_at = time.monotonic()
            if "No process is running jobs" in line:
                break
        told_at = time.monotonic()
    finally:
        command.terminate()
        command.wait(30)
    text = "".join(seen)
    assert queued_at is not None, text
    assert "No process is running jobs" in text, text
    assert told_at - queued_at < 10, text  # within seconds of the hand-over
    assert "manage.py runserver" in text and "stays queued" in text
    assert Job.objects.get(kind="reconcile").state == JobState.QUEUED
