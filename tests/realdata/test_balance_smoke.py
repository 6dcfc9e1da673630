"""bench/balance.py on a slice of the Grocery Store split, as a user runs it (its own process and
throw-away install): the one-photo catalog, 250 train photos as shoppers' traffic, the fit, and the
val photos answered with balancing off and on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, missing_inputs
from tests.support.realdata import data_missing, run_bench

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_balanced_answers_smoke(tmp_path: Path) -> None:
    reason = missing_inputs(DEFAULT_DATA, DEFAULT_WEIGHTS, "val")
    if reason:
        data_missing(reason)
    out = tmp_path / "balance.json"
    done = run_bench(
        "bench.balance", "--traffic", "250", "--evaluate-on", "val", "--limit", "150", "--output", str(out),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["traffic"]["photos"] == 250 and report["evaluated_on"] == "val"
    assert report["fit"]["queries"] == 250 and report["fit"]["products"] == 81
    assert report["fit"]["offset_min"] < 0 < report["fit"]["offset_max"]
    assert report["before"]["queries"] == report["balanced"]["queries"] == 150
    # The whole pool of 2,640 lifts val from 0.385 to 0.503; 250 shoppers' photos must lift it too.
    assert report["balanced"]["recall@1"] > report["before"]["recall@1"]
    assert "| balanced |" in done.stdout
