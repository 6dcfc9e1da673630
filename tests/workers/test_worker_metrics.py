"""The Celery side of the metrics: queue depth read from the machine's real Redis at scrape time (and a
broker that does not answer never hangs the scrape), the worker's metrics endpoint and who may read
it, and a real prefork worker whose child processes' task counts reach its endpoint."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager

import pytest
import redis
from django.db import connection

from catalog import services
from config.celery import app
from search.metrics.exposition import serve_metrics
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import WorkerProcess, wait_until, worker_env
from tests.support.metrics import assert_sane_histogram, parse, scrape, value

pytestmark = pytest.mark.django_db

# kombu's Redis transport: one list per queue and priority step (priority 0 is the bare name).
PRIORITY_SEP = "\x06\x16"


@pytest.fixture
def redis_broker(broker_url, settings) -> redis.Redis:
    """This process's settings say a Redis broker is configured; the scrape reads the queues there."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = broker_url
    return redis.Redis.from_url(broker_url)


def test_queue_depth_is_read_from_redis(client, redis_broker) -> None:
    redis_broker.rpush("index", "a", "b", "c")
    redis_broker.rpush(f"index{PRIORITY_SEP}6", "urgent")  # a task sent with a priority
    redis_broker.rpush("reindex", "r")
    redis_broker.hset("unacked", mapping={"tag-1": "x", "tag-2": "y"})
    families = scrape(client)
    assert value(families, "lookalike_celery_broker_up") == 1
    assert value(families, "lookalike_celery_queue_length", queue="index") == 4
    assert value(families, "lookalike_celery_queue_length", queue="reindex") == 1
    assert value(families, "lookalike_celery_queue_length", queue="default") == 0
    assert value(families, "lookalike_celery_unacked_tasks") == 2


def test_no_broker_no_queue_metrics(client, settings) -> None:
    assert settings.CELERY_TASK_ALWAYS_EAGER  # the embedded default: tasks run in-process
    families = scrape(client)
    assert "lookalike_celery_queue_length" not in families
    assert "lookalike_celery_broker_up" not in families
    assert value(families, "lookalike_scrape_collector_up", collector="collect_queue_depth") == 1


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback TCP server that accepts connections and never answers: a hung broker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def _closed_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("broker", ["hung", "refusing"])
def test_a_broker_that_does_not_answer_never_hangs_the_scrape(client, settings, broker) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = False

    def timed_scrape() -> tuple[dict, float]:
        start = time.monotonic()
        families = scrape(client)
        return families, time.monotonic() - start

    if broker == "hung":
        with silent_server() as port:
            settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"
            families, elapsed = timed_scrape()
    else:
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
        families, elapsed = timed_scrape()
    assert elapsed < 3.0, f"the scrape waited {elapsed:.1f} s on a broker that does not answer"
    assert value(families, "lookalike_celery_broker_up") == 0
    assert "lookalike_celery_queue_length" not in families
    assert value(families, "lookalike_active_model_version") == 0  # the rest of the scrape is there


# --- the worker's endpoint -------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_worker_endpoint_serves_allowed_peers_only(settings) -> None:
    server = serve_metrics("127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert "lookalike_celery_tasks" in parse(body)
        assert _get(f"{base}/elsewhere")[0] == 404
        settings.METRICS_ALLOWED_CIDRS = ["192.0.2.0/24"]  # loopback no longer listed
        status, body = _get(f"{base}/metrics")
        assert status == 403 and "lookalike_" not in body
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_prefork_worker_reports_its_children_tasks(
    celery_over_redis, media_root, vector_store_path, tmp_path
) -> None:
    # No active model: indexing an upload fails transiently (NoActiveModel), so the worker retries it.
    # The worker must not make the pretrained model itself: the default backbone's weights install
    # with the project, so that would succeed and nothing would be retried.
    product = services.product_create(sku="RETRY-1", title="Waits for a model")
    services.product_image_add(product=product, data=image_bytes(pattern=21))  # enqueues index_images

    port = _free_port()
    db = connection.settings_dict
    env = worker_env(
        database_url=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        broker_url=celery_over_redis,
        media_root=media_root,
        vector_store_path=vector_store_path,
        models_dir=tmp_path / "models",
        extra={
            "WORKER_METRICS_PORT": str(port),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker-metrics"),
            "AUTO_BOOTSTRAP_MODEL": "false",
        },
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", celery_over_redis, pool="prefork", concurrency=2)
    worker.start()
    try:
        app.send_task("lookalike.sweep_index")  # succeeds
        app.send_task("lookalike.index_images", args=[])  # a missing argument: fails

        url = f"http://127.0.0.1:{port}/metrics"
        families: dict = {}

        def reported() -> bool:
            nonlocal families
            try:
                status, body = _get(url)
            except OSError:
                return False  # not listening yet
            families = parse(body) if status == 200 else {}
            tasks = "lookalike_celery_tasks_total"
            return (
                value(
                    families,
                    "lookalike_celery_tasks",
                    tasks,
                    task="lookalike.sweep_index",
                    outcome="succeeded",
                )
                >= 1
                and value(
                    families, "lookalike_celery_tasks", tasks, task="lookalike.index_images", outcome="failed"
                )
                >= 1
                and value(
                    families,
                    "lookalike_celery_tasks",
                    tasks,
                    task="lookalike.index_images",
                    outcome="retried",
                )
                >= 1
            )

        wait_until(
            reported, timeout=120, what="the worker's endpoint to count each outcome", on_fail=worker.log_tail
        )
        duration = "lookalike_celery_task_duration_seconds"
        assert assert_sane_histogram(families, duration, task="lookalike.sweep_index") >= 1
        # Counted in the children, summed by the main process from the multiprocess folder.
        assert any((tmp_path / "worker-metrics").glob("*.db"))
    finally:
        worker.kill()
