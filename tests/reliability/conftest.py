"""Fixtures for fault-injection tests: real worker processes, a Redis server the test owns, and
the search fixtures (exported model, active model, Edge store) shared with tests/search."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection

from config.celery import app
from tests.support import model_fixtures
from tests.support.celery_worker import WorkerProcess, worker_env
from tests.support.model_fixtures import empty_redis_db
from tests.support.serving_fixtures import free_port

# Other suites use Redis DB 15 (the default) on the machine's Redis; this folder uses its own DB so
# a concurrent run elsewhere cannot consume or flush our tasks.
RELIABILITY_BROKER_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def broker_url(monkeypatch: pytest.MonkeyPatch) -> str:
    """tests/search's broker_url, pointed at DB 13 unless CELERY_TEST_BROKER_URL says otherwise."""
    url = os.environ.get("CELERY_TEST_BROKER_URL", RELIABILITY_BROKER_URL)
    monkeypatch.setenv("CELERY_TEST_BROKER_URL", url)
    return empty_redis_db(url)


def database_url() -> str:
    """The test database as a URL, for worker processes (they must see the rows this test writes)."""
    db = connection.settings_dict
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


@pytest.fixture
def make_worker(
    exported_bootstrap, media_root: Path, vector_store_path: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Build worker processes for a broker URL; every one built is SIGKILLed at teardown."""
    from search import vector_store as store_handle

    made: list[WorkerProcess] = []

    def make(broker: str, extra: dict[str, str] | None = None) -> WorkerProcess:
        # The worker owns the embedded store from now on (one owner per folder).
        store_handle.reset_vector_store()
        env = worker_env(
            database_url=database_url(),
            broker_url=broker,
            media_root=media_root,
            vector_store_path=vector_store_path,
            models_dir=exported_bootstrap.path.parent.parent,
            extra=extra,
        )
        worker = WorkerProcess(env, tmp_path / f"worker-{len(made)}.log", broker)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.kill()
    store_handle.reset_vector_store()


class RedisServer:
    """A redis-server this test owns on a free loopback port, with no persistence: after a SIGKILL and
    restart it comes back empty, like a broker whose queued messages were lost."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited ({self.proc.returncode}): {self.log_path.read_text()}"
                )
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """Never the machine's Redis: other engineers' runs depend on that one staying up."""
    server = RedisServer(free_port(), tmp_path / "redis.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def over_own_redis(own_redis: RedisServer, settings) -> Iterator[RedisServer]:
    """This process sends its tasks to the test's own Redis (as celery_over_redis does for the shared one)."""
    previous = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.update(task_always_eager=False, broker_url=own_redis.url)
    model_fixtures._reset_pool()
    yield own_redis
    app.conf.update(**previous)
    model_fixtures._reset_pool()
