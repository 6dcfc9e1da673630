"""Retrieval metrics (Recall@K, mAP@R) and the evaluation report (JSON + PNG).

Metrics follow Musgrave et al., "A Metric Learning Reality Check" (ECCV 2020):

- Recall@K: the fraction of queries with at least one relevant gallery item among the top K.
- mAP@R: for a query with R relevant gallery items, ``(1/R) * sum_{i<=R} P(i) * rel(i)`` over the top
  R results, where ``P(i)`` is the precision at rank i. Unlike Recall@1 it rewards ranking *all* of a
  product's photos first, which is what a shopper scrolling results sees.

Similarity is cosine. Queries with no relevant gallery item are skipped (neither metric is defined
for them) and counted in ``num_skipped``. Equal similarities are ranked by gallery index, so results
never depend on sort stability or batch size.

Numpy only: the module is on the training path (any Keras backend) and never imports TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
# The metric names, defined once: retrieval_metrics' keys, which training reports, model versions, the
# promotion gate, job results and the admin store and read.
RECALL_PREFIX = "recall@"


def recall_at(k: int) -> str:
    return f"{RECALL_PREFIX}{k}"


RECALL_AT_1 = recall_at(1)
RECALL_AT_5 = recall_at(5)
MAP_AT_R = "map@r"
# How people see them (admin columns, summary lines).
METRIC_LABELS = {RECALL_AT_1: "R@1", RECALL_AT_5: "R@5", MAP_AT_R: "mAP@R"}
# A query block is at most this many float64 similarities (64 MB), whatever batch_size says, so a
# 100k-image gallery still evaluates in bounded memory.
_MAX_BLOCK_ELEMENTS = 8_000_000


def _normalise(name: str, emb: Any) -> np.ndarray:
    arr = np.asarray(emb, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if arr.shape[0] and float(norms.min()) == 0.0:
        raise ValueError(f"{name} contains an all-zero vector; cosine similarity is undefined for it")
    return arr / np.where(norms == 0.0, 1.0, norms)


def _ranked_top(sims: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top ``k`` columns of each row: similarity descending, then index ascending."""
    n_rows, n_cols = sims.shape
    k = min(k, n_cols)
    if k == 0:
        return np.zeros((n_rows, 0), dtype=np.int64)
    # The k-th largest value per row; every member of the top k has a value >= it, so only those
    # candidates (k plus any ties at the boundary) need the exact, tie-aware sort.
    kth = np.partition(sims, n_cols - k, axis=1)[:, n_cols - k]
    out = np.empty((n_rows, k), dtype=np.int64)
    for r in range(n_rows):
        cand = np.flatnonzero(sims[r] >= kth[r])
        order = np.lexsort((cand, -sims[r, cand]))  # last key is primary: similarity descending
        out[r] = cand[order[:k]]
    return out


def retrieval_metrics(
    query_emb: Any,
    query_labels: Sequence[Any] | np.ndarray,
    gallery_emb: Any,
    gallery_labels: Sequence[Any] | np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 1024,
    exclude_self: bool = False,
) -> dict[str, Any]:
    """Recall@K for each K in ``ks`` and mAP@R of queries against a gallery, by cosine similarity.

    ``exclude_self=True`` is for gallery == query (leave-one-out): query i never retrieves gallery
    item i and does not count it as relevant. Returns ``{"recall@K": float, ..., "map@r": float,
    "num_queries": evaluated queries, "num_skipped": queries with no relevant item,
    "num_gallery": int}``; metric values are NaN when no query could be evaluated.
    """
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError("ks must be positive integers")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    q = _normalise("query_emb", query_emb)
    g = _normalise("gallery_emb", gallery_emb)
    q_labels = np.asarray(query_labels)
    g_labels = np.asarray(gallery_labels)
    if q_labels.shape != (q.shape[0],) or g_labels.shape != (g.shape[0],):
        raise ValueError("labels must be 1-D with one label per embedding")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query dimension {q.shape[1]} != gallery dimension {g.shape[1]}")
    if exclude_self and q.shape[0] != g.shape[0]:
        raise ValueError("exclude_self needs the query set to be the gallery (same length)")

    # R per query, computed once over the whole gallery (labels only, no similarities needed).
    uniq, g_codes = np.unique(g_labels, return_inverse=True)
    counts = np.bincount(g_codes, minlength=len(uniq))
    pos = np.clip(np.searchsorted(uniq, q_labels), 0, max(len(uniq) - 1, 0))
    known = (uniq[pos] == q_labels) if len(uniq) else np.zeros(q.shape[0], dtype=bool)
    r_all = np.where(known, counts[pos] if len(uniq) else 0, 0).astype(np.int64)
    if exclude_self:
        r_all -= 1

    n_gallery = g.shape[0]
    step = max(1, min(batch_size, _MAX_BLOCK_ELEMENTS // max(n_gallery, 1)))
    hits = dict.fromkeys(ks, 0)
    ap_sum = 0.0
    evaluated = 0
    for start in range(0, q.shape[0], step):
        stop = min(start + step, q.shape[0])
        # float64 products rounded to float32: BLAS may sum in a different order for a different
        # block height, and the rounding removes those last-bit differences so ties stay ties.
        sims = (q[start:stop] @ g.T).astype(np.float32)
        if exclude_self:
            rows = np.arange(stop - start)
            sims[rows, rows + start] = -np.inf
        r_batch = r_all[start:stop]
        depth = max(ks[-1], int(r_batch.max(initial=0)))
        top = _ranked_top(sims, depth)
        rel = g_labels[top] == q_labels[start:stop, None]
        if exclude_self:
            rel &= top != (np.arange(start, stop)[:, None])
        for row in range(stop - start):
            r = int(r_batch[row])
            if r <= 0:
                continue
            evaluated += 1
            row_rel = rel[row]
            for k in ks:
                hits[k] += bool(row_rel[:k].any())
            rel_r = row_rel[:r]
            precision = np.cumsum(rel_r) / np.arange(1, r + 1)
            ap_sum += float((precision * rel_r).sum()) / r

    nan = float("nan")
    metrics: dict[str, Any] = {recall_at(k): (hits[k] / evaluated if evaluated else nan) for k in ks}
    metrics[MAP_AT_R] = ap_sum / evaluated if evaluated else nan
    metrics["num_queries"] = evaluated
    metrics["num_skipped"] = int(q.shape[0] - evaluated)
    metrics["num_gallery"] = int(n_gallery)
    return metrics


def safe_retrieval_metrics(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """``retrieval_metrics``, but a set that cannot be scored (an all-zero embedding, no query left)
    gives NaN metrics and the reason instead of an exception: a finished training run is never lost to
    its report. NaN is written as null (``write_report``)."""
    try:
        return retrieval_metrics(*args, **kwargs)
    except ValueError as exc:
        ks = sorted({int(k) for k in kwargs.get("ks", DEFAULT_KS)})
        nan = float("nan")
        return {**{recall_at(k): nan for k in ks}, MAP_AT_R: nan, "num_queries": 0, "error": str(exc)}


def recall_curve(metrics: Mapping[str, Any]) -> dict[int, float]:
    """``{K: recall}`` from a :func:`retrieval_metrics` result, for :func:`plot_report`; recalls that
    were not measured (None or NaN) are left out, so the curve may be empty."""
    curve = {
        int(key.removeprefix(RECALL_PREFIX)): float(v)
        for key, v in metrics.items()
        if key.startswith(RECALL_PREFIX) and v is not None and math.isfinite(float(v))
    }
    return dict(sorted(curve.items()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; null reads as "not measured"
    if isinstance(value, Path):
        return str(value)
    return value


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    # Write next to the target and rename, so a reader (reindex gate, web page) never sees half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(
    path: str | os.PathLike[str],
    metrics: Mapping[str, Any],
    *,
    baseline: Mapping[str, Any] | None = None,
    history: Mapping[str, Sequence[float]] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.json``: the trained model's metrics, optional baseline (untrained) metrics,
    training history and free-form metadata (model name, data split, timings). Returns the path.

    NaN becomes null. The file is replaced atomically.
    """
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": dict(metrics),
        "baseline": dict(baseline) if baseline is not None else None,
        "history": dict(history) if history is not None else None,
        "meta": dict(meta) if meta is not None else {},
    }
    out = Path(path)
    text = json.dumps(_jsonable(report), indent=2, sort_keys=True, allow_nan=False) + "\n"
    _atomic_write_bytes(out, text.encode("utf-8"))
    return out


def plot_report(
    png_path: str | os.PathLike[str],
    curves: Mapping[str, Mapping[int, float]],
    history: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Write a PNG: Recall@K curves (e.g. ``{"trained": {...}, "untrained": {...}}``) and, when
    ``history`` is given (a Keras ``History.history`` dict), the training curves beside them."""
    # Figure + the Agg canvas directly, not pyplot: no global backend switch, no GUI, and safe to call
    # from a Celery worker thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = 2 if history else 1
    fig = Figure(figsize=(6 * panels, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, panels, 1)
    for name, curve in curves.items():
        ks = sorted(int(k) for k in curve)
        ax.plot(ks, [float(curve[k]) for k in ks], marker="o", label=name)
    ax.set_xlabel("K")
    ax.set_ylabel("Recall@K")
    ax.set_ylim(0.0, 1.02)
    ax.set_title("Retrieval: Recall@K")
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend()
    if history:
        hx = fig.add_subplot(1, panels, 2)
        for name, values in history.items():
            vals = [float(v) for v in values]
            hx.plot(range(1, len(vals) + 1), vals, label=name)
        hx.set_xlabel("epoch")
        hx.xaxis.set_major_locator(MaxNLocator(integer=True))
        hx.set_title("Training")
        hx.grid(True, alpha=0.3)
        hx.legend()
    fig.tight_layout()
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
