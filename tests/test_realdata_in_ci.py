"""Real-data tests skip when their data set is absent, except under CI=true, where they fail."""

from __future__ import annotations

import pytest

from tests.support.realdata import data_missing


def test_a_missing_data_set_skips_on_a_developers_machine(monkeypatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not here"):
        data_missing("the data set is not here")


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_a_missing_data_set_fails_under_ci(monkeypatch, value) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        data_missing("the data set is not here")


def test_the_real_data_tests_use_it() -> None:
    """No real-data test skips on its own: each goes through data_missing."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent / "realdata"
    for path in folder.glob("test_*.py"):
        text = path.read_text()
        assert "pytest.skip(" not in text, path.name
        assert "data_missing(" in text, path.name
