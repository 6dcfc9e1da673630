"""Where a job runs: in this process now (``"here"``), or handed to its owner (``"owner"``).

Two placements, and search does not choose between them: the workers app, where Celery and the
embedded runner live, tells search once which one holds (workers/apps.py calls ``use_placement``).
- ``EMBEDDED`` (no broker): the web process owns the vector store and its runner threads
  (workers/embedded.py) run handed-over jobs; work announced to the workers (indexing an import's
  images) runs in the process that announced it. A command runs a job itself when nothing else owns
  the store, or when the kind needs no store.
- ``BROKER``: Celery workers run handed-over jobs and announced work; a command runs only the kinds
  marked ``local_with_broker`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from search.jobs.registry import kind_get


@dataclass(frozen=True)
class Placement:
    # True: no broker; the process that owns the vector store runs jobs, and announced work runs in
    # the process that announced it. False: Celery workers do both.
    embedded: bool
    # Who runs a handed-over job, in words for a console.
    owner: str


EMBEDDED = Placement(True, "the process that owns the vector store (the web server's job runner)")
BROKER = Placement(False, "the Celery workers")

_chooser: Callable[[], Placement] | None = None


def use_placement(chooser: Callable[[], Placement]) -> None:
    """Set who answers ``placement()`` (the workers app, when it is ready)."""
    global _chooser
    _chooser = chooser


def placement() -> Placement:
    if _chooser is None:
        raise ImproperlyConfigured("No job placement: the workers app sets it when ready (INSTALLED_APPS).")
    return _chooser()


def job_placement(kind: str) -> str:
    """``"here"`` when this process may run a job of ``kind`` now, ``"owner"`` when it must hand it over:
    to the broker's workers, or to the process that holds the embedded vector store."""
    from search.vector_store import VectorStoreLocked, vector_store

    spec = kind_get(kind)
    if not placement().embedded:
        return "here" if spec.local_with_broker else "owner"
    if not spec.needs_store:
        return "here"
    try:
        vector_store()
    except VectorStoreLocked:
        return "owner"
    return "here"
