"""Moving the whole index to a new model with no downtime, and back again.

A new model gets its own collection. A background job fills it in batches while the active model
keeps answering queries; new uploads are written to both collections meanwhile (see
``selectors.write_targets``). When full, the evaluation gate (gate.py) compares the two models on the
held-out query set and promotion flips the active ModelVersion (and the server alias) in one
transaction, so a query is always embedded and searched by the same model. The previous collection
is kept for ``rollback``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.models import ProductImage
from catalog.services import index_state
from search import events, selectors
from search.errors import SearchError
from search.models import ModelStatus, ModelVersion, ReindexJob, ReindexStatus
from search.services import gate
from search.services.index_building import index_optimize
from search.services.indexing import BATCH, IndexOutcome, fill_collection
from search.services.model_versions import model_activate
from search.vector_store import vector_store

log = logging.getLogger(__name__)
FINISHED = (ReindexStatus.PROMOTED, ReindexStatus.REJECTED, ReindexStatus.FAILED, ReindexStatus.CANCELLED)


class ReindexError(SearchError):
    """A reindex or rollback that cannot start; the message says why in one line."""

    def __init__(self, message: str) -> None:
        super().__init__("reindex_refused", message)


@transaction.atomic
def reindex_start(*, model: ModelVersion | None = None, force: bool = False) -> ReindexJob:
    """Create a reindex job to ``model`` (default: the latest candidate); the caller runs ``reindex_fill``
    (a job of kind "reindex" does, wherever the vector store is: search/services/job_kinds.py)."""
    model = model or selectors.latest_candidate()
    if model is None:
        raise ReindexError("No candidate model to reindex to; train one first (manage.py train).")
    running = selectors.reindex_in_progress()
    if running is not None:
        raise ReindexError(
            f"Reindex job {running.pk} to v{running.model_version.version} is still {running.status}."
        )
    active = selectors.active_model()
    if active is not None and active.pk == model.pk:
        raise ReindexError(f"Model v{model.version} is already active.")
    vector_store().ensure_collection(model.collection, model.embedding_dim)
    job = ReindexJob.objects.create(
        model_version=model, previous_version=active, force=force, total=ProductImage.objects.count()
    )
    return job


def reindex_fill(
    job: ReindexJob,
    *,
    on_batch: Callable[[ReindexJob], None] | None = None,
    log_line: Callable[[str], None] | None = None,
) -> ReindexJob:
    """Fill the new collection in batches from where the job left off; build its graph (a large one),
    so the model serves through it from its first search; then gate and promote."""
    if job.status in FINISHED:
        return job
    ReindexJob.objects.filter(pk=job.pk).update(
        status=ReindexStatus.RUNNING, started_at=job.started_at or timezone.now()
    )
    model = job.model_version
    job.refresh_from_db()
    drawn: deque[list[str]] = deque()  # batches handed to the pipeline, not yet written

    def from_cursor() -> Iterator[list[str]]:
        # The pipeline draws a batch ahead (its photos decode while the one before embeds), so the
        # walk keeps its own position; the job's cursor moves only once a batch is written.
        after = job.cursor
        while batch := selectors.image_ids_in_order(after=after, limit=BATCH):
            drawn.append(batch)
            after = batch[-1]
            yield batch

    def written(step: IndexOutcome) -> None:
        batch = drawn.popleft()
        ReindexJob.objects.filter(pk=job.pk).update(
            cursor=batch[-1], done=F("done") + len(step.indexed), failed=F("failed") + len(step.failed)
        )
        if on_batch is not None:
            on_batch(job)

    fill_collection(from_cursor(), model, on_batch=written)
    index_optimize(model, log_line=log_line)
    ReindexJob.objects.filter(pk=job.pk).update(status=ReindexStatus.EVALUATING)
    job.refresh_from_db()
    return gate_and_promote(job)


def reindex_fail(job_id: int, error: str, *, status: str = ReindexStatus.FAILED) -> None:
    """Record that a job gave up (or was cancelled, with ``status``); a new ``reindex`` may start."""
    ReindexJob.objects.filter(pk=job_id).exclude(status__in=FINISHED).update(
        status=status, error=error[:2000], finished_at=timezone.now()
    )


def gate_and_promote(job: ReindexJob) -> ReindexJob:
    candidate = job.model_version
    verdict = gate.evaluate(candidate, selectors.active_model(), selectors.image_labels())
    if not verdict["passed"] and not job.force:
        ReindexJob.objects.filter(pk=job.pk).update(
            status=ReindexStatus.REJECTED, gate=verdict, finished_at=timezone.now()
        )
        ModelVersion.objects.filter(pk=candidate.pk).update(status=ModelStatus.REJECTED)
        job.refresh_from_db()
        return job
    promote(candidate)
    ReindexJob.objects.filter(pk=job.pk).update(
        status=ReindexStatus.PROMOTED, gate=verdict, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def promote(model: ModelVersion) -> ModelVersion | None:
    """Activate ``model`` and relabel the indexed rows with it (its collection holds their points)."""
    previous = model_activate(model)
    index_state.images_relabel_indexed(model_label=str(model.version))
    return previous


@dataclass
class RollbackResult:
    restored: ModelVersion
    replaced: ModelVersion
    missing_enqueued: int


def rollback() -> RollbackResult:
    """Re-activate the previously active model; re-index what was uploaded since it stepped down."""
    current = selectors.active_model()
    if current is None:
        raise ReindexError("No active model to roll back from.")
    store = vector_store()
    previous = selectors.previous_model()
    if previous is None or not store.collection_exists(previous.collection):
        raise ReindexError("No previous model with a kept collection to roll back to.")
    promote(previous)
    missing = missing_points(previous)
    if missing:
        with transaction.atomic():
            index_state.images_mark_pending(image_ids=missing)
            events.announce(events.index_requested, image_ids=missing)
    return RollbackResult(previous, current, len(missing))


def missing_points(model: ModelVersion) -> list[str]:
    """Images of the catalog that have no point in ``model``'s collection."""
    ids = [str(pk) for pk in ProductImage.objects.values_list("pk", flat=True)]
    present: set[str] = set()
    store = vector_store()
    for start in range(0, len(ids), 512):
        present.update(store.retrieve(model.collection, ids[start : start + 512]).keys())
    return [i for i in ids if i not in present]
