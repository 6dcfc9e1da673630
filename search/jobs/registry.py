"""The kinds of job: what a kind declares (``JobKind``), the ``job_kind`` decorator that registers one,
and the lookup. A kind is one module of search/jobs/kinds/; that package is imported once, when the
search app is ready (search/apps.py), so this module never imports a kind and no kind imports another.

Also here: what a runner function gets (``JobContext``) and the errors a kind raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from search.errors import SearchError
from search.models import Job


class JobError(SearchError):
    """A job that cannot be submitted or changed as asked; the message says why in one line."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__("job_refused", message, field)


class JobCancelled(Exception):
    """Raised inside a runner (``ctx.check_cancelled``) when someone cancelled the job."""


class JobFailed(Exception):
    """A runner's way to fail its job with a message (what a training process said, say)."""


class JobContext(Protocol):
    job_id: int

    def progress(self, done: int, total: int | None = None) -> None: ...
    def log(self, line: str) -> None: ...
    def cancelled(self) -> bool: ...
    def check_cancelled(self) -> None: ...
    def set_result(self, result: dict[str, Any]) -> None: ...


Runner = Callable[[Job, JobContext], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    run: Runner
    # Runs where the vector store is: its owner (the embedded web process) or a Celery worker.
    needs_store: bool = True
    # Safe to run again after its runner died (idempotent, or resumes like a reindex from its cursor).
    resumable: bool = False
    # The embedded runner's thread: "store" runs one job at a time in the process that owns the store;
    # "process" is for jobs that start their own process (training), so they never hold up the rest.
    lane: str = "store"
    # Normalises and checks params at submission (raises JobError), so a bad request fails at once.
    check: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    # With a broker, run in the command that asked rather than on a worker (an import reads a file the
    # workers may not see; its indexing still goes to them).
    local_with_broker: bool = False
    # What ``done`` counts, for the pace a console bar shows ("images": images/s); "" shows none.
    unit: str = ""


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, label: str, **options: Any) -> Callable[[Runner], Runner]:
    """Register ``run`` as the runner of jobs of kind ``name`` (a decorator)."""

    def register(run: Runner) -> Runner:
        _KINDS[name] = JobKind(name=name, label=label, run=run, **options)
        return run

    return register


def job_kinds() -> dict[str, JobKind]:
    """Every registered kind (search/jobs/kinds/ registered them when the app was ready)."""
    return _KINDS


def kind_get(name: str) -> JobKind:
    spec = _KINDS.get(name)
    if spec is None:
        raise JobError(f"Unknown job kind {name!r}; known: {', '.join(sorted(_KINDS))}.", "kind")
    return spec
