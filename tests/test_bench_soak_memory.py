"""The soak's memory figure: the first and last windows' medians, so one minute's swing cannot decide
the target, while a steady climb still shows."""

from __future__ import annotations

from bench.soak import _first_and_last, _memory_trend, _window_median


def _samples(values: list[float], every: float = 5.0) -> list[tuple[float, dict[str, float]]]:
    return [(i * every, {"rss": v, "anon": v * 0.7, "file": v * 0.3}) for i, v in enumerate(values)]


def _growth(samples: list[tuple[float, dict[str, float]]], window: float) -> float:
    start, end = _first_and_last(samples, window)
    return 100 * (end["rss"] - start["rss"]) / start["rss"]


def test_a_low_first_minute_does_not_decide_the_growth_of_a_level_run() -> None:
    # 20 minutes at 560 MiB, sampled every 5 s, whose first minute sits 25 MiB low and last 35 high.
    values = [535.0] * 12 + [560.0] * 216 + [595.0] * 12
    samples = _samples(values)
    assert _growth(samples, 60) > 10  # the minute figure calls it growth
    assert abs(_growth(samples, 300)) < 1  # the window figure does not


def test_a_steady_climb_is_growth_by_windows_and_by_the_line() -> None:
    # 500 MiB rising 3 MiB a minute for 20 minutes: +12 % start to end, a leak at any reading.
    values = [500.0 + 3.0 * (i * 5 / 60) for i in range(240)]
    samples = _samples(values)
    assert _growth(samples, 300) > 8
    trend = _memory_trend(samples, 300)["rss"]
    assert abs(trend["mib_per_min"] - 3.0) < 0.01
    assert trend["window_medians"][0] < trend["window_medians"][-1]
    assert len(trend["window_medians"]) == 4


def test_warm_up_samples_are_left_out() -> None:
    samples = [(-30.0, {"rss": 9000.0, "anon": 0.0, "file": 0.0})] + _samples([500.0] * 24)
    start = _window_median(samples, 0, 60)
    assert start is not None and start["rss"] == 500.0
    assert _window_median(samples, 500, 600) is None
