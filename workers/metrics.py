"""The Celery side of the metrics: tasks run, failed and retried by name with their durations (in
whichever process runs them: a worker, or the web process with the embedded default's eager tasks),
the worker's own metrics endpoint, and the depth of each queue read from Redis at scrape time.

The worker endpoint starts in the worker's main process on ``worker_init`` when
``WORKER_METRICS_PORT`` is set. With the prefork pool the tasks run in child processes, so the
worker needs ``PROMETHEUS_MULTIPROC_DIR`` (docker-compose.yml sets it) for their values to reach the
main process's endpoint (search/metrics/exposition.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

import redis
from celery import Task, signals
from django.conf import settings
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from redis.backoff import NoBackoff
from redis.retry import Retry

from search.metrics import exposition
from workers.queues import Queue

log = logging.getLogger(__name__)

# Seconds: from a payload sync (milliseconds) to a reindex (hours; its time limit is 6 h).
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0)
# A scrape must answer even when the broker does not: each Redis call gives up after this, no retry.
# A Redis on the same network answers LLEN in well under a millisecond.
BROKER_TIMEOUT_S = 0.5

TASKS = Counter(
    "lookalike_celery_tasks",
    "Celery tasks finished, by task name and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
)
TASK_SECONDS = Histogram(
    "lookalike_celery_task_duration_seconds",
    "Run time of one Celery task execution, by task name (a retried task counts each run).",
    ["task"],
    buckets=TASK_BUCKETS,
)

_started: dict[str, float] = {}


def _on_prerun(task_id: str | None = None, **_: object) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


def _on_postrun(task_id: str | None = None, task: Task | None = None, **_: object) -> None:
    start = _started.pop(task_id, None) if task_id else None
    if start is not None and task is not None:
        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - start)


def _on_success(sender: Task, **_: object) -> None:
    TASKS.labels(sender.name, "succeeded").inc()


def _on_failure(sender: Task, **_: object) -> None:
    TASKS.labels(sender.name, "failed").inc()


def _on_retry(sender: Task, **_: object) -> None:
    TASKS.labels(sender.name, "retried").inc()


def _on_worker_init(sender: object = None, **_: object) -> None:
    port = settings.WORKER_METRICS_PORT
    if not port:
        return
    pool = getattr(sender, "pool_cls", "")
    if exposition.multiprocess_dir():
        exposition.reset_multiprocess_dir()
    elif "prefork" in f"{getattr(pool, '__module__', '')} {pool}":
        log.warning(
            "PROMETHEUS_MULTIPROC_DIR is not set: tasks run in prefork child processes and their "
            "metrics will not reach this worker's endpoint; set it to an empty folder of its own."
        )
    server = exposition.serve_metrics(settings.WORKER_METRICS_HOST, port)
    log.info("worker metrics at http://%s:%d/metrics", settings.WORKER_METRICS_HOST, server.server_port)


def _on_process_shutdown(pid: int | None = None, **_: object) -> None:
    exposition.process_exited(pid or os.getpid())


def connect() -> None:
    """Connect the task and worker signals (WorkersConfig.ready); idempotent."""
    handlers = (
        (signals.task_prerun, _on_prerun),
        (signals.task_postrun, _on_postrun),
        (signals.task_success, _on_success),
        (signals.task_failure, _on_failure),
        (signals.task_retry, _on_retry),
        (signals.worker_init, _on_worker_init),
        (signals.worker_process_shutdown, _on_process_shutdown),
    )
    for signal, handler in handlers:
        signal.connect(handler, weak=False, dispatch_uid=f"lookalike.metrics.{handler.__name__}")


# --- queue depth, at scrape time -------------------------------------------------------------------


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=BROKER_TIMEOUT_S,
        socket_connect_timeout=BROKER_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )


def _queue_keys(queue: str) -> list[str]:
    # kombu's Redis transport keeps one list per queue and priority step (priority 0 is the bare name).
    return [f"{queue}{Channel.sep}{step}" if step else queue for step in PRIORITY_STEPS]


def collect_queue_depth() -> Iterable[Metric]:
    """Messages waiting in each queue and messages taken but not yet acknowledged, read from Redis
    with one pipelined round trip; nothing when tasks run eagerly (no broker)."""
    url = settings.CELERY_BROKER_URL or ""
    if settings.CELERY_TASK_ALWAYS_EAGER or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        return
    up = GaugeMetricFamily("lookalike_celery_broker_up", "1 when the broker answered this scrape, else 0.")
    queues = [q.value for q in Queue]
    try:
        with _redis(url).pipeline(transaction=False) as pipe:
            for queue in queues:
                for key in _queue_keys(queue):
                    pipe.llen(key)
            pipe.hlen("unacked")  # kombu's hash of messages delivered to a worker and not yet acked
            replies = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("metrics: the broker did not answer (%s)", exc)
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    depth = GaugeMetricFamily(
        "lookalike_celery_queue_length", "Tasks waiting in each Celery queue.", labels=["queue"]
    )
    steps = len(PRIORITY_STEPS)
    for n, queue in enumerate(queues):
        depth.add_metric([queue], sum(replies[n * steps : (n + 1) * steps]))
    yield depth
    yield GaugeMetricFamily(
        "lookalike_celery_unacked_tasks",
        "Tasks a worker has taken (running or prefetched) and not yet acknowledged.",
        value=replies[-1],
    )
