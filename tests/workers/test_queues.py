"""The queues are declared once, so a worker started without -Q consumes every one of them."""

from __future__ import annotations

from config.celery import app
from workers.queues import TASK_ROUTES, Queue


def test_every_queue_is_declared_for_a_plain_worker() -> None:
    declared = {q.name for q in app.conf.task_queues}
    assert declared == {q.value for q in Queue}
    assert app.conf.task_default_queue == Queue.DEFAULT.value


def test_routes_point_at_declared_queues_and_real_tasks() -> None:
    import workers.tasks  # noqa: F401  (registers the tasks)

    declared = {q.value for q in Queue}
    for task_name, route in TASK_ROUTES.items():
        assert route["queue"] in declared
        assert task_name in app.tasks
