"""How a real-data test reacts to its data set being absent: it skips on a developer's machine, and
fails under CI (``CI=true``), where these tests are the point of the run and a silent skip would read
as a pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def data_missing(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(
            f"{reason}; CI=true, so the real-data tests must run (provide the data set).", pytrace=False
        )
    pytest.skip(reason)


def run_bench(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` from the repository, as a user runs a bench: its own process, without
    the tests' Django settings or database (it makes its own throw-away install)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=Path(__file__).resolve().parents[2],
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
