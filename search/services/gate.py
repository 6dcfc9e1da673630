"""The evaluation gate: before a candidate model replaces the active one, both are scored on the
same held-out photos (Recall@K / mAP@R against every other catalog photo, the protocol training
reports) and the candidate must not be worse."""

from __future__ import annotations

import numpy as np

from catalog.models import ProductImage
from ml.evaluate import retrieval_metrics
from search.models import ModelVersion
from search.vector_store import vector_store

GATE_MAX_QUERIES = 1000


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
    """Recall@K / mAP@R of one model's collection: held-out photos against every other photo (the
    query photos are left out of the gallery)."""
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


def json_safe(metrics: dict) -> dict:
    # JSON (and PostgreSQL's jsonb) has no NaN: an undefined metric is stored as null.
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in metrics.items()}


def evaluate(candidate: ModelVersion, active: ModelVersion | None, labels: dict[str, int]) -> dict:
    """The gate's verdict as stored on the job: ``{"queries", "candidate", "active", "passed"}``.
    With no active model (or no images) there is nothing to compare with, and the candidate passes."""
    if active is None or not labels:
        return {"queries": 0, "passed": True}
    queries = gate_query_ids(candidate)
    new = model_recall(candidate, queries, labels)
    old = model_recall(active, queries, labels)
    new_r1, old_r1 = new.get("recall@1", float("nan")), old.get("recall@1", float("nan"))
    passed = bool(np.isnan(old_r1) or (not np.isnan(new_r1) and new_r1 >= old_r1))
    return {
        "queries": new.get("num_queries", 0),
        "candidate": json_safe(new),
        "active": json_safe(old),
        "passed": passed,
    }
