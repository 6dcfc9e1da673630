"""Fitting "same" and "no match" thresholds on held-out queries."""

from __future__ import annotations

import numpy as np
import pytest

from ml import calibration


def _scored(rng: np.random.Generator, n: int = 400) -> dict[str, np.ndarray]:
    # Right first hits score high, wrong ones and products outside the catalog lower.
    correct = rng.random(n) < 0.85
    in_score = np.where(correct, rng.normal(0.85, 0.05, n), rng.normal(0.6, 0.08, n))
    return {
        "in_score": in_score.astype(np.float32),
        "in_margin": np.where(correct, rng.uniform(0.02, 0.2, n), rng.uniform(0.0, 0.05, n)).astype(
            np.float32
        ),
        "in_correct": correct,
        "out_score": rng.normal(0.6, 0.08, n).astype(np.float32),
        "out_margin": rng.uniform(0.0, 0.05, n).astype(np.float32),
    }


def test_the_fit_meets_both_targets_with_the_most_coverage():
    scored = _scored(np.random.default_rng(0))
    fitted = calibration.fit(scored)
    assert fitted.met and fitted.precision >= 0.95 and fitted.no_match_unseen >= 0.90
    assert 0.5 < fitted.coverage <= 1.0
    # Recomputed from the raw scores, the chosen thresholds do what the fit says.
    said = (scored["in_score"] >= fitted.same) & (scored["in_margin"] >= fitted.margin)
    assert (said & scored["in_correct"]).sum() / said.sum() == pytest.approx(fitted.precision)
    assert set(fitted.curves) == {"threshold", "precision", "coverage", "no_match_unseen"}


def test_an_unreachable_target_is_reported_not_hidden():
    rng = np.random.default_rng(1)
    scored = _scored(rng)
    # A model whose first hit is right half the time whatever its score: no threshold is 95% right.
    scored["in_correct"] = rng.random(len(scored["in_score"])) < 0.5
    fitted = calibration.fit(scored)
    assert not fitted.met and fitted.precision < 0.95


def test_only_a_clear_first_hit_is_the_same_product():
    thresholds = {"same": 0.8, "margin": 0.05}
    assert calibration.label_hits([0.9, 0.7, 0.6], thresholds) == ["same", "similar", "similar"]
    assert calibration.label_hits([0.9, 0.88], thresholds) == ["similar", "similar"]  # too close a second
    assert calibration.label_hits([0.79, 0.5], thresholds) == ["similar", "similar"]
    assert calibration.label_hits([0.9], thresholds) == ["same"]
    assert calibration.label_hits([0.99, 0.1], {}) == ["similar", "similar"]  # uncalibrated


def test_scored_queries_take_the_own_product_out_for_the_unseen_case():
    gallery = np.eye(4, dtype=np.float32)
    gallery_labels = np.array([0, 0, 1, 2])
    queries = np.array([[1.0, 0.1, 0, 0], [0, 0, 1.0, 0.2]], dtype=np.float32)
    scored = calibration.scored_queries(queries, np.array([0, 1]), gallery, gallery_labels)
    assert scored["in_correct"].tolist() == [True, True]
    assert (scored["out_score"] < scored["in_score"]).all()


def test_the_plot_is_written(tmp_path):
    scored = _scored(np.random.default_rng(2))
    fitted = calibration.fit(scored)
    png = calibration.plot(tmp_path / "c.png", scored, fitted)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
