"""Calibrated answers: when is the first hit "the same product", and when is nothing in the catalog?

A search's first hit is labelled ``same`` when its score is at least ``same`` and beats the next
product's score by at least ``margin``; every other hit is ``similar``, and an answer with no ``same``
hit says ``no_match``. The two numbers are fitted on held-out queries with known answers:

- in-catalog queries: held-out photos searched against the catalog; right when the first hit is
  their product;
- out-of-catalog queries: the same photos with their own product taken out of the catalog, so any
  ``same`` is wrong (a shopper's photo of something the shop does not sell).

The fit picks the pair that labels the most in-catalog queries ``same`` while ``same`` stays right at
least ``target_precision`` of the time on in-catalog queries and out-of-catalog queries get
``no_match`` at least ``target_no_match`` of the time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TARGET_PRECISION = 0.95
# A calibration's source when its queries were augmented views of the catalog's images (one photo per
# product): those tell a copy of the shop's picture, not a shopper's photo of a product not sold.
SOURCE_VIEWS = "augmented catalog views"
TARGET_NO_MATCH = 0.90
MIN_SUPPORT = 20


@dataclass
class Calibration:
    same: float
    margin: float
    # Measured on the fitting queries at the chosen thresholds.
    precision: float  # of "same" on in-catalog queries
    coverage: float  # in-catalog queries labelled "same"
    no_match_unseen: float  # out-of-catalog queries answered "no_match"
    queries: int
    met: bool  # both targets reached
    curves: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in data.items()}


def label_hits(scores: list[float], thresholds: dict[str, Any]) -> list[str]:
    """``same``/``similar`` per hit (one hit per product, best first) under a model's thresholds; all
    ``similar`` when the model has none."""
    labels = ["similar"] * len(scores)
    same = thresholds.get("same")
    if scores and isinstance(same, int | float):
        runner_up = scores[1] if len(scores) > 1 else -1.0
        if scores[0] >= same and scores[0] - runner_up >= float(thresholds.get("margin", 0.0)):
            labels[0] = "same"
    return labels


def _top_two(sims: np.ndarray, gallery_labels: np.ndarray, products: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per query: the best product, its score, and the second product's score (product score = its
    best image), as the search service ranks them."""
    best = np.full((sims.shape[0], len(products)), -2.0, dtype=np.float32)
    for j, product in enumerate(products):
        columns = gallery_labels == product
        if columns.any():
            best[:, j] = sims[:, columns].max(axis=1)
    order = np.argsort(-best, axis=1)
    rows = np.arange(sims.shape[0])
    first, second = order[:, 0], order[:, 1] if len(products) > 1 else order[:, 0]
    return (
        products[first],
        best[rows, first],
        best[rows, second] if len(products) > 1 else np.full(len(rows), -1.0),
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def first_hits(
    query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: the first hit's product, its score and its lead over the second product."""
    sims = _unit(query_embeddings) @ _unit(gallery_embeddings).T
    top, s1, s2 = _top_two(sims, gallery_labels, np.unique(gallery_labels))
    return top, s1, s1 - s2


def scored_queries(
    query_embeddings: np.ndarray,
    query_labels: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_labels: np.ndarray,
) -> dict[str, np.ndarray]:
    """Top-1 score, margin and correctness of every query, in the catalog and with its product out."""
    sims = _unit(query_embeddings) @ _unit(gallery_embeddings).T
    products = np.unique(gallery_labels)
    top, s1, s2 = _top_two(sims, gallery_labels, products)
    # Out of the catalog: the query's own product removed from the gallery.
    masked = np.where(gallery_labels[None, :] == query_labels[:, None], -2.0, sims)
    _, u1, u2 = _top_two(masked, gallery_labels, products)
    return {
        "in_score": s1,
        "in_margin": s1 - s2,
        "in_correct": top == query_labels,
        "out_score": u1,
        "out_margin": u1 - u2,
    }


def fit(
    scored: dict[str, np.ndarray],
    *,
    target_precision: float = TARGET_PRECISION,
    target_no_match: float = TARGET_NO_MATCH,
    min_support: int = MIN_SUPPORT,
) -> Calibration:
    """The (same, margin) pair with the highest in-catalog coverage that meets both targets, counting
    only thresholds that call at least ``min_support`` queries "same" (a precision measured on three
    queries is luck); when no pair does, the one closest to the targets (and ``met=False``)."""
    n = len(scored["in_score"])
    if n == 0:
        raise ValueError("calibration needs at least one held-out query")
    thresholds = np.unique(np.round(np.concatenate([scored["in_score"], scored["out_score"]]), 4))
    margins = np.array([0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12])
    best: tuple[Any, ...] | None = None
    fallback: tuple[Any, ...] | None = None
    for m in margins:
        in_ok = scored["in_margin"] >= m
        out_ok = scored["out_margin"] >= m
        for t in thresholds:
            said = in_ok & (scored["in_score"] >= t)
            wrong_out = out_ok & (scored["out_score"] >= t)
            n_said = int(said.sum())
            precision = float((said & scored["in_correct"]).sum() / n_said) if n_said else 1.0
            coverage = n_said / n
            no_match = 1.0 - float(wrong_out.mean())
            candidate = (coverage, precision, no_match, float(t), float(m))
            meets = precision >= target_precision and no_match >= target_no_match and n_said >= min_support
            if meets and (best is None or coverage > best[0]):
                best = candidate
            key = (
                n_said >= min_support,
                min(precision / target_precision, no_match / target_no_match),
                coverage,
            )
            if fallback is None or key > fallback[0]:
                fallback = (key, candidate)
    chosen, met = (best, True) if best is not None else (fallback[1], False)  # type: ignore[index]
    coverage, precision, no_match, t, m = chosen
    return Calibration(
        same=t,
        margin=m,
        precision=precision,
        coverage=coverage,
        no_match_unseen=no_match,
        queries=n,
        met=met,
        curves=curves(scored, margin=m),
    )


def curves(scored: dict[str, np.ndarray], *, margin: float, points: int = 41) -> dict[str, list[float]]:
    """Precision and coverage of ``same`` (in-catalog) and the no-match rate (out of catalog) along the
    score threshold, at a fixed margin: what the plot shows."""
    lo = float(min(scored["in_score"].min(), scored["out_score"].min()))
    hi = float(max(scored["in_score"].max(), scored["out_score"].max()))
    grid = np.linspace(lo, hi, points)
    precision, coverage, no_match = [], [], []
    for t in grid:
        said = (scored["in_margin"] >= margin) & (scored["in_score"] >= t)
        n_said = int(said.sum())
        precision.append(float((said & scored["in_correct"]).sum() / n_said) if n_said else 1.0)
        coverage.append(n_said / len(said))
        no_match.append(1.0 - float(((scored["out_margin"] >= margin) & (scored["out_score"] >= t)).mean()))
    return {
        "threshold": grid.round(4).tolist(),
        "precision": precision,
        "coverage": coverage,
        "no_match_unseen": no_match,
    }


def plot(path: str | Path, scored: dict[str, np.ndarray], calibration: Calibration) -> Path:
    """Score distributions (in-catalog right, in-catalog wrong, out of catalog) and the curves, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(-0.2, 1.0, 49)
    right_hits = scored["in_score"][scored["in_correct"]]
    wrong_hits = scored["in_score"][~scored["in_correct"]]
    left.hist(right_hits, bins=bins, alpha=0.6, label=f"in catalog, first hit right ({len(right_hits)})")
    left.hist(wrong_hits, bins=bins, alpha=0.6, label=f"in catalog, first hit wrong ({len(wrong_hits)})")
    left.hist(scored["out_score"], bins=bins, alpha=0.5, label=f"not in catalog ({len(scored['out_score'])})")
    left.axvline(calibration.same, color="black", linestyle="--", label=f"same >= {calibration.same:.3f}")
    left.set_xlabel("first hit's score (cosine)")
    left.set_ylabel("queries")
    left.legend(fontsize=8)
    c = calibration.curves
    right.plot(c["threshold"], c["precision"], label="precision of 'same'")
    right.plot(c["threshold"], c["coverage"], label="in-catalog queries called 'same'")
    right.plot(c["threshold"], c["no_match_unseen"], label="unseen products: 'no match'")
    right.axvline(calibration.same, color="black", linestyle="--")
    right.set_xlabel(f"threshold (margin {calibration.margin:.2f})")
    right.set_ylim(0, 1.02)
    right.legend(fontsize=8)
    fig.suptitle(
        f"calibration on {calibration.queries} held-out queries: precision {calibration.precision:.3f}, "
        f"no-match on unseen {calibration.no_match_unseen:.3f}, coverage {calibration.coverage:.3f}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write(path: str | Path, calibration: Calibration) -> Path:
    path = Path(path)
    path.write_text(json.dumps(calibration.to_json(), indent=2), encoding="utf-8")
    return path
