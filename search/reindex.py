"""Moving the whole index to a new model with no downtime, and back again.

A new model gets its own collection. A background job fills it in batches while the active model
keeps answering queries; new uploads are written to both collections meanwhile (see
``model_versions.write_targets``). When full, an evaluation gate compares the two models on the
held-out query set and promotion flips the active ModelVersion (and the server alias) in one
transaction, so a query is always embedded and searched by the same model. The previous collection
is kept for ``rollback``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from catalog.models import IndexStatus, ProductImage
from search import indexing, model_versions
from search.models import ModelStatus, ModelVersion, ReindexJob, ReindexStatus
from search.runtime import vector_store

log = logging.getLogger(__name__)
BATCH = 64
GATE_MAX_QUERIES = 1000


class ReindexError(ValueError):
    pass


def latest_candidate() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelStatus.CANDIDATE).order_by("-version").first()


@transaction.atomic
def reindex_start(
    *, model: ModelVersion | None = None, force: bool = False, enqueue: bool = True
) -> ReindexJob:
    model = model or latest_candidate()
    if model is None:
        raise ReindexError("No candidate model to reindex to; train one first (manage.py train).")
    running = model_versions.reindex_in_progress()
    if running is not None:
        raise ReindexError(
            f"Reindex job {running.pk} to v{running.model_version.version} is still {running.status}."
        )
    active = model_versions.active_model()
    if active is not None and active.pk == model.pk:
        raise ReindexError(f"Model v{model.version} is already active.")
    vector_store().ensure_collection(model.collection, model.embedding_dim)
    job = ReindexJob.objects.create(
        model_version=model, previous_version=active, force=force, total=ProductImage.objects.count()
    )
    if enqueue:
        from workers import tasks

        transaction.on_commit(lambda: tasks.reindex_run.delay(job.pk))
    return job


def reindex_fill(job: ReindexJob, *, on_batch=None) -> ReindexJob:
    """Fill the new collection in batches from where the job left off; then gate and promote."""
    if job.status in (
        ReindexStatus.PROMOTED,
        ReindexStatus.REJECTED,
        ReindexStatus.FAILED,
        ReindexStatus.CANCELLED,
    ):
        return job
    ReindexJob.objects.filter(pk=job.pk).update(
        status=ReindexStatus.RUNNING, started_at=job.started_at or timezone.now()
    )
    model = job.model_version
    while True:
        job.refresh_from_db()
        qs = ProductImage.objects.order_by("pk")
        if job.cursor:
            qs = qs.filter(pk__gt=job.cursor)
        batch = [str(pk) for pk in qs.values_list("pk", flat=True)[:BATCH]]
        if not batch:
            break
        outcome = indexing.index_images(batch, targets=[model], mark=False)
        ReindexJob.objects.filter(pk=job.pk).update(
            cursor=batch[-1], done=F("done") + len(outcome.indexed), failed=F("failed") + len(outcome.failed)
        )
        if on_batch is not None:
            on_batch(job)
    ReindexJob.objects.filter(pk=job.pk).update(status=ReindexStatus.EVALUATING)
    job.refresh_from_db()
    return gate_and_promote(job)


def _vectors(collection: str, ids: list[str]) -> dict[str, np.ndarray]:
    store = vector_store()
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), 512):
        for image_id, (vec, _) in store.retrieve(
            collection, ids[start : start + 512], with_vectors=True
        ).items():
            if vec is not None:
                out[image_id] = np.asarray(vec, np.float32)
    return out


def model_recall(model: ModelVersion, query_ids: list[str], labels: dict[str, int]) -> dict:
    """Recall@K / mAP@R of one model's collection: held-out photos against every other photo, the
    protocol training reports (the query photos are left out of the gallery)."""
    from ml.evaluate import retrieval_metrics

    vectors = _vectors(model.collection, sorted(labels))
    query_set = {i for i in query_ids if i in vectors}
    queries = sorted(query_set)
    gallery = [i for i in sorted(vectors) if i not in query_set]
    if not queries or not gallery:
        return {"recall@1": float("nan"), "num_queries": 0}
    return retrieval_metrics(
        np.stack([vectors[i] for i in queries]),
        np.array([labels[i] for i in queries]),
        np.stack([vectors[i] for i in gallery]),
        np.array([labels[i] for i in gallery]),
    )


def gate_query_ids(candidate: ModelVersion) -> list[str]:
    ids = [str(i) for i in candidate.eval_image_ids]
    if ids:
        return ids[:GATE_MAX_QUERIES]
    # No held-out set recorded (a bootstrap model, say): a fixed fifth of the images as queries,
    # the rest as the gallery.
    rng = np.random.default_rng(0)
    eligible = sorted(str(pk) for pk in ProductImage.objects.values_list("pk", flat=True))
    size = min(GATE_MAX_QUERIES, max(1, len(eligible) // 5))
    return sorted(rng.choice(eligible, size=size, replace=False).tolist()) if eligible else []


def gate_and_promote(job: ReindexJob) -> ReindexJob:
    candidate, active = job.model_version, model_versions.active_model()
    labels = {str(pk): product_id for pk, product_id in ProductImage.objects.values_list("pk", "product_id")}
    gate: dict = {"queries": 0}
    passed = True
    if active is not None and labels:
        queries = gate_query_ids(candidate)
        new = model_recall(candidate, queries, labels)
        old = model_recall(active, queries, labels)
        gate = {"queries": new.get("num_queries", 0), "candidate": _json_safe(new), "active": _json_safe(old)}
        new_r1, old_r1 = new.get("recall@1", float("nan")), old.get("recall@1", float("nan"))
        passed = bool(np.isnan(old_r1) or (not np.isnan(new_r1) and new_r1 >= old_r1))
        gate["passed"] = passed
    if not passed and not job.force:
        ReindexJob.objects.filter(pk=job.pk).update(
            status=ReindexStatus.REJECTED, gate=gate, finished_at=timezone.now()
        )
        ModelVersion.objects.filter(pk=candidate.pk).update(status=ModelStatus.REJECTED)
        job.refresh_from_db()
        return job
    promote(candidate)
    ReindexJob.objects.filter(pk=job.pk).update(
        status=ReindexStatus.PROMOTED, gate=gate, finished_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def _json_safe(metrics: dict) -> dict:
    # JSON (and PostgreSQL's jsonb) has no NaN: an undefined metric is stored as null.
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}


def promote(model: ModelVersion) -> ModelVersion | None:
    previous = model_versions.model_activate(model)
    ProductImage.objects.filter(index_status=IndexStatus.INDEXED).update(
        indexed_model_version=str(model.version)
    )
    return previous


@dataclass
class RollbackResult:
    restored: ModelVersion
    replaced: ModelVersion
    missing_enqueued: int


def rollback() -> RollbackResult:
    """Re-activate the previously active model; re-index what was uploaded since it stepped down."""
    current = model_versions.active_model()
    if current is None:
        raise ReindexError("No active model to roll back from.")
    store = vector_store()
    previous = (
        ModelVersion.objects.filter(status=ModelStatus.RETIRED)
        .exclude(collection="")
        .order_by("-promoted_at", "-version")
        .first()
    )
    if previous is None or not store.collection_exists(previous.collection):
        raise ReindexError("No previous model with a kept collection to roll back to.")
    promote(previous)
    missing = missing_points(previous)
    if missing:
        ProductImage.objects.filter(pk__in=missing).update(index_status=IndexStatus.PENDING)
        from catalog import events

        with transaction.atomic():
            events.images_added(missing)
    return RollbackResult(previous, current, len(missing))


def missing_points(model: ModelVersion) -> list[str]:
    ids = [str(pk) for pk in ProductImage.objects.values_list("pk", flat=True)]
    present: set[str] = set()
    store = vector_store()
    for start in range(0, len(ids), 512):
        present.update(store.retrieve(model.collection, ids[start : start + 512]).keys())
    return [i for i in ids if i not in present]
