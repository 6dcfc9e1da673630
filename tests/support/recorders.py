"""Recorders for what the code announces and enqueues, without replacing any of it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery.signals import task_prerun
from django.dispatch import Signal


@contextmanager
def announcements(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    """Every ``signal.send`` while the block runs, as the keyword payloads receivers got."""
    seen: list[dict[str, Any]] = []

    def record(sender: Any, **payload: Any) -> None:
        payload.pop("signal", None)
        seen.append(payload)

    signal.connect(record, weak=False)
    try:
        yield seen
    finally:
        signal.disconnect(record)


@contextmanager
def tasks_run() -> Iterator[list[tuple[str, tuple, dict]]]:
    """Every task that starts in this process while the block runs (eager tasks included):
    (task name, args, kwargs)."""
    seen: list[tuple[str, tuple, dict]] = []

    def record(sender: Any = None, task: Any = None, args: Any = (), kwargs: Any = None, **_: Any) -> None:
        seen.append((task.name, tuple(args or ()), dict(kwargs or {})))

    task_prerun.connect(record, weak=False)
    try:
        yield seen
    finally:
        task_prerun.disconnect(record)
