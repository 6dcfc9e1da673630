"""How a real-data test reacts to its data set being absent: it skips on a developer's machine, and
fails under CI (``CI=true``), where these tests are the point of the run and a silent skip would read
as a pass."""

from __future__ import annotations

import os
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
