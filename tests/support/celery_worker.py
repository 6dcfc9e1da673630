"""A real `celery worker` process for integration tests, with the machine's Redis as the broker.

The worker owns the embedded vector store while it runs (one owner per folder), so a test reads
the store only after :meth:`WorkerProcess.stop`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from workers.queues import Queue

# Every declared queue (workers/queues.py), as `-Q` for the tests' workers.
QUEUES = tuple(q.value for q in Queue)


class WorkerProcess:
    """``queues=None`` starts the worker without ``-Q``, as Celery's docs and a new user do. The solo
    pool runs tasks in the worker process itself; ``pool="prefork"`` in child processes, as in production."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        broker_url: str,
        queues: tuple[str, ...] | None = QUEUES,
        *,
        pool: str = "solo",
        concurrency: int = 1,
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.broker_url = broker_url
        self.queues = queues
        self.pool = pool
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                f"--pool={self.pool}",
                f"--concurrency={self.concurrency}",
                *(["-Q", ",".join(self.queues)] if self.queues else []),
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown: the task in hand finishes, nothing new starts."""
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def queued(self) -> int:
        client = redis.Redis.from_url(self.broker_url)
        waiting = sum(client.llen(q) for q in QUEUES)
        return waiting + client.hlen("unacked")

    def wait_idle(self, timeout: float = 120, settle: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited early; log:\n{self.log_tail()}")
            if self.queued() == 0:
                time.sleep(settle)
                if self.queued() == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"worker did not drain the queues in {timeout} s; log:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{on_fail()}")


def worker_env(
    *,
    database_url: str,
    broker_url: str,
    media_root: Path,
    vector_store_path: Path,
    models_dir: Path,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "QDRANT_", "TF_SERVING"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        MEDIA_ROOT=str(media_root),
        VECTOR_STORE_PATH=str(vector_store_path),
        MODELS_DIR=str(models_dir),
        INDEX_PENDING_GRACE_S="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    env.update(extra or {})
    return env
