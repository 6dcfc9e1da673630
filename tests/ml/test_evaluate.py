"""Recall@K and mAP@R against values computed by hand, plus batching and the report files.

Hand-made cases use 2-D unit vectors at given angles, so cosine order is angular distance order and
can be read off directly. No two gallery items are equally far from a query (ties-free).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ml.evaluate import plot_report, recall_curve, retrieval_metrics, write_report


def at(*degrees: float) -> np.ndarray:
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1)


def test_two_queries_by_hand():
    gallery = at(10, 20, 30, 40, 50)
    g_labels = ["b", "a", "a", "b", "a"]
    # Query 1 at 0 deg, label a: order 10(b) 20(a) 30(a) 40(b) 50(a); R = 3 (three a's).
    #   top R relevance [0, 1, 1] -> AP@R = (0 + 1/2 + 2/3) / 3 = 7/18; first hit at rank 2.
    # Query 2 at 44 deg, label b: distances 40:4, 50:6, 30:14, 20:24, 10:34 -> b a a a b; R = 2.
    #   top R relevance [1, 0] -> AP@R = (1/1 + 0) / 2 = 1/2; hit at rank 1.
    m = retrieval_metrics(at(0, 44), ["a", "b"], gallery, g_labels, ks=(1, 2, 5))
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx(1.0)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["map@r"] == pytest.approx((7 / 18 + 1 / 2) / 2)  # = 4/9
    assert (m["num_queries"], m["num_skipped"], m["num_gallery"]) == (2, 0, 5)


def test_map_at_r_with_four_relevant():
    # Query at 0 deg, label a. Gallery 5(a) 15(b) 25(a) 35(a) 45(b) 55(a): R = 4.
    # Top 4 relevance [1, 0, 1, 1]: precisions at the hits 1/1, 2/3, 3/4
    # -> AP@R = (1 + 2/3 + 3/4) / 4 = 29/48. Recall@1 = 1.
    m = retrieval_metrics(at(0), [1], at(5, 15, 25, 35, 45, 55), [1, 2, 1, 1, 2, 1], ks=(1,))
    assert m["map@r"] == pytest.approx(29 / 48)
    assert m["recall@1"] == 1.0


def test_perfect_and_worst_ranking():
    gallery = at(0, 1, 90, 91)
    labels = ["x", "x", "y", "y"]
    perfect = retrieval_metrics(at(0.5, 90.5), ["x", "y"], gallery, labels, ks=(1, 2))
    assert perfect["recall@1"] == perfect["map@r"] == 1.0
    # Each query's two relevant items are the farthest: nothing relevant in the top R = 2.
    worst = retrieval_metrics(at(0.5, 90.5), ["y", "x"], gallery, labels, ks=(1, 2, 4))
    assert worst["recall@1"] == worst["recall@2"] == worst["map@r"] == 0.0
    assert worst["recall@4"] == 1.0


def test_exclude_self_leave_one_out():
    # p0 0(a), p1 10(a), p2 30(b), p3 100(b); each query's own item removed, R = 1 for everyone.
    #   p0: p1(10) p2(30) p3(100) -> first is a: hit, AP 1
    #   p1: p0(10) p2(20) p3(90)  -> first is a: hit, AP 1
    #   p2: p1(20) p0(30) p3(70)  -> b only at rank 3: recall@1 = recall@2 = 0, recall@3 = 1, AP 0
    #   p3: p2(70) p1(90) p0(100) -> first is b: hit, AP 1
    emb, labels = at(0, 10, 30, 100), ["a", "a", "b", "b"]
    m = retrieval_metrics(emb, labels, emb, labels, ks=(1, 2, 3), exclude_self=True)
    assert m["recall@1"] == pytest.approx(0.75)
    assert m["recall@2"] == pytest.approx(0.75)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["map@r"] == pytest.approx(0.75)
    # Without exclusion every query finds itself first.
    assert retrieval_metrics(emb, labels, emb, labels, ks=(1,))["recall@1"] == 1.0


def test_queries_without_relevant_items_are_skipped():
    m = retrieval_metrics(at(0, 50), ["a", "zzz"], at(10, 40), ["a", "b"], ks=(1,))
    assert (m["num_queries"], m["num_skipped"]) == (1, 1)
    assert m["recall@1"] == 1.0
    # A singleton class under leave-one-out has nothing left to find.
    none = retrieval_metrics(at(0, 90), ["a", "b"], at(0, 90), ["a", "b"], exclude_self=True)
    assert none["num_queries"] == 0 and math.isnan(none["map@r"])


def test_cosine_ignores_vector_length():
    gallery = at(10, 20, 30, 40, 50) * np.array([[3.0], [0.1], [7.0], [1.0], [0.5]])
    m = retrieval_metrics(at(0, 44) * 5.0, ["a", "b"], gallery, ["b", "a", "a", "b", "a"], ks=(1,))
    assert m["map@r"] == pytest.approx(4 / 9)


def _reference(q, ql, g, gl, ks, exclude_self=False):
    """Unbatched brute force: full similarity matrix, full sort, ties broken by gallery index."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    sims = (q @ g.T).astype(np.float32)
    hits, aps, n = dict.fromkeys(ks, 0), [], 0
    for i in range(len(q)):
        idx = np.arange(len(g))
        if exclude_self:
            idx = idx[idx != i]
        order = idx[np.lexsort((idx, -sims[i, idx]))]
        rel = gl[order] == ql[i]
        r = int(rel.sum())
        if r == 0:
            continue
        n += 1
        for k in ks:
            hits[k] += bool(rel[:k].any())
        prec = np.cumsum(rel[:r]) / np.arange(1, r + 1)
        aps.append(float((prec * rel[:r]).sum() / r))
    return {f"recall@{k}": hits[k] / n for k in ks} | {"map@r": float(np.mean(aps))}


@pytest.mark.parametrize("exclude_self", [False, True])
def test_batching_is_identical_and_matches_brute_force(exclude_self):
    rng = np.random.default_rng(3)
    g = rng.normal(size=(120, 8))
    g[60:70] = g[50:60]  # exact duplicates: ties must be broken the same way in every batch
    gl = rng.integers(0, 9, size=120)
    q, ql = (g, gl) if exclude_self else (rng.normal(size=(45, 8)), rng.integers(0, 9, size=45))
    ks = (1, 5, 10)
    runs = [
        retrieval_metrics(q, ql, g, gl, ks, batch_size=b, exclude_self=exclude_self) for b in (1, 7, 10_000)
    ]
    assert runs[0] == runs[1] == runs[2]
    ref = _reference(q, ql, g, gl, ks, exclude_self)
    for key, value in ref.items():
        assert runs[0][key] == pytest.approx(value, abs=1e-12), key


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics([[np.nan, 1.0]], ["a"], at(0), ["a"])
    with pytest.raises(ValueError, match="all-zero"):
        retrieval_metrics([[0.0, 0.0]], ["a"], at(0), ["a"])
    with pytest.raises(ValueError, match="dimension"):
        retrieval_metrics(np.ones((1, 3)), ["a"], at(0), ["a"])
    with pytest.raises(ValueError, match="exclude_self"):
        retrieval_metrics(at(0), ["a"], at(0, 1), ["a", "a"], exclude_self=True)


def test_report_files(tmp_path):
    trained = retrieval_metrics(at(0, 44), ["a", "b"], at(10, 20, 30, 40, 50), list("baaba"), ks=range(1, 6))
    untrained = retrieval_metrics(
        at(0, 44), ["b", "a"], at(10, 20, 30, 40, 50), list("baaba"), ks=range(1, 6)
    )
    curves = {"trained": recall_curve(trained), "untrained": recall_curve(untrained)}
    assert list(curves["trained"]) == [1, 2, 3, 4, 5]

    report = write_report(
        tmp_path / "out" / "report.json",
        trained,
        baseline=untrained,
        history={"loss": [1.0, 0.5]},
        meta={"model": "tiny", "bad": float("nan"), "arr": np.arange(2)},
    )
    data = json.loads(report.read_text())
    assert data["metrics"]["map@r"] == pytest.approx(4 / 9)
    assert data["baseline"]["recall@1"] == untrained["recall@1"]
    assert data["meta"] == {"model": "tiny", "bad": None, "arr": [0, 1]}

    for history in (None, {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7]}):
        png = plot_report(tmp_path / f"report-{bool(history)}.png", curves, history)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5_000
