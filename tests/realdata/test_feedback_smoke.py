"""bench/feedback.py --smoke: the clicks-as-training-data simulation on a slice of the Grocery Store split,
run as a user runs it (its own process and throw-away environment). Checks the simulation's figures
against what it did: every half-A search is one logged search, a click where the right product was
in the top 8, one training example per click."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, missing_inputs
from tests.support.realdata import data_missing, run_bench

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_feedback_simulation_smoke(tmp_path: Path) -> None:
    reason = missing_inputs(DEFAULT_DATA, DEFAULT_WEIGHTS, "test")
    if reason:
        data_missing(reason)
    out = tmp_path / "feedback.json"
    done = run_bench("bench.feedback", "--smoke", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["catalog_products"] == 4
    assert report["half_a_photos"] == 4 and report["half_b_photos"] == 4
    # Halved by shoot: each product's first frame searches (A), its second is measured (B); the cut
    # leaves exactly one neighbouring pair per product.
    assert report["half_b_with_neighbour_in_a"] == 4
    feedback = report["feedback"]
    assert feedback["searches"] == 4
    # With 4 products in the catalog the right one is always in the top 8: every search gets its click.
    assert feedback["clicks"] == 4 and feedback["hit_rate_at_8"] == 1.0
    assert feedback["examples"] == feedback["clicks"]
    # Hard negatives are the products shown above each click: one fewer than each click's position.
    assert feedback["hard_negatives"] == sum(
        (int(position) - 1) * n for position, n in feedback["click_positions"].items()
    )
    assert 0.0 <= report["before"]["recall@1"] <= 1.0 and report["before"]["queries"] == 4
    assert report["trained"] is False and report["after"] is None  # the smoke does not train
    assert "R@1" in done.stdout
