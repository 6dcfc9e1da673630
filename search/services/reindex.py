"""Moving the whole index to a new model with no downtime, and back again.

A new model gets its own collection. A background job fills it in batches while the active model
keeps answering queries; new uploads are written to both collections meanwhile (see
``selectors.write_targets``). When full, the evaluation gate (gate.py) compares the two models on the
held-out query set and promotion flips the active ModelVersion (and the server alias) in one
transaction, so a query is always embedded and searched by the same model. The previous collection
is kept for ``rollback``. The reindex's state (target and previous model, cursor, counts, gate verdict)
is its job's result: one record per reindex.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from catalog.models import ProductImage
from catalog.services import index_state
from search import events, selectors
from search.errors import SearchError
from search.models import Job, ModelStatus, ModelVersion, ReindexStatus
from search.services import gate
from search.services.index_building import index_optimize
from search.services.indexing import BATCH, IndexOutcome, fill_collection
from search.services.model_versions import model_activate
from search.vector_store import vector_store

log = logging.getLogger(__name__)
FINISHED = (ReindexStatus.PROMOTED, ReindexStatus.REJECTED)


class ReindexError(SearchError):
    """A reindex or rollback that cannot start; the message says why in one line."""

    def __init__(self, message: str) -> None:
        super().__init__("reindex_refused", message)


def _record(job: Job, **fields: Any) -> None:
    """Merge ``fields`` into the reindex's state, which its job's result holds (and onto ``job``). Only
    the process running the job writes it, so this write is the whole story."""
    job.result = {**job.result, **fields}
    Job.objects.filter(pk=job.pk).update(result=job.result)


@transaction.atomic
def reindex_start(job: Job) -> Job:
    """Begin the reindex that ``job`` (a running job of kind "reindex") records: to ``params["model"]``
    (default: the latest candidate), promoted past a failed gate with ``params["force"]``. The caller
    runs ``reindex_fill`` (the kind's runner does, wherever the vector store is:
    search/jobs/kinds/reindex.py). The state (model, cursor, counts, gate) is kept in the job's result."""
    version = job.params.get("model")
    model = (
        ModelVersion.objects.filter(version=version).first()
        if version is not None
        else selectors.latest_candidate()
    )
    if model is None:
        raise ReindexError("No candidate model to reindex to; train one first (manage.py train).")
    running = selectors.reindex_in_progress(exclude=job.pk)
    if running is not None:
        raise ReindexError(
            f"Reindex job {running.pk} to v{running.result['model_version']} is still "
            f"{running.result.get('status', 'running')}."
        )
    active = selectors.active_model()
    if active is not None and active.pk == model.pk:
        raise ReindexError(f"Model v{model.version} is already active.")
    vector_store().ensure_collection(model.collection, model.embedding_dim)
    _record(
        job,
        model_version=model.version,
        previous_version=active.version if active is not None else None,
        status=ReindexStatus.RUNNING,
        total=ProductImage.objects.count(),
        indexed=0,
        failed=0,
        cursor="",
        gate={},
    )
    return job


def reindex_fill(
    job: Job,
    *,
    on_batch: Callable[[Job], None] | None = None,
    log_line: Callable[[str], None] | None = None,
) -> Job:
    """Fill the new collection in batches from where the job left off (its cursor); build its graph (a
    large one), so the model serves through it from its first search; then gate and promote."""
    if job.result.get("status") in FINISHED:
        return job
    _record(job, status=ReindexStatus.RUNNING)
    model = ModelVersion.objects.get(version=job.result["model_version"])
    drawn: deque[list[str]] = deque()  # batches handed to the pipeline, not yet written

    def from_cursor() -> Iterator[list[str]]:
        # The pipeline draws a batch ahead (its photos decode while the one before embeds), so the
        # walk keeps its own position; the job's cursor moves only once a batch is written.
        after = job.result.get("cursor", "")
        while batch := selectors.image_ids_in_order(after=after, limit=BATCH):
            drawn.append(batch)
            after = batch[-1]
            yield batch

    def written(step: IndexOutcome) -> None:
        batch = drawn.popleft()
        _record(
            job,
            cursor=batch[-1],
            indexed=job.result.get("indexed", 0) + len(step.indexed),
            failed=job.result.get("failed", 0) + len(step.failed),
        )
        if on_batch is not None:
            on_batch(job)

    fill_collection(from_cursor(), model, on_batch=written)
    index_optimize(model, log_line=log_line)
    _record(job, status=ReindexStatus.EVALUATING)
    return gate_and_promote(job)


def gate_and_promote(job: Job) -> Job:
    candidate = ModelVersion.objects.get(version=job.result["model_version"])
    verdict = gate.evaluate(candidate, selectors.active_model(), selectors.image_labels())
    if not verdict["passed"] and not job.params.get("force"):
        _record(job, status=ReindexStatus.REJECTED, gate=verdict)
        ModelVersion.objects.filter(pk=candidate.pk).update(status=ModelStatus.REJECTED)
        return job
    promote(candidate)
    _record(job, status=ReindexStatus.PROMOTED, gate=verdict)
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
