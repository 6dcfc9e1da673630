"""Reading /metrics in tests the way Prometheus does: prometheus_client's own text parser."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def parse(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def scrape(client, **extra) -> dict:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def samples(families: dict, family: str, sample: str, **labels: str) -> list[Sample]:
    found = families.get(family)
    if found is None:
        return []
    return [
        s for s in found.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(families: dict, family: str, sample: str | None = None, **labels: str) -> float:
    """The sum of the matching samples (0 when there is none yet)."""
    return sum(s.value for s in samples(families, family, sample or family, **labels))


def assert_sane_histogram(families: dict, name: str, **labels: str) -> int:
    """Buckets rise with ``le`` and never fall, +Inf holds the count, the sum is finite and >= 0.
    Returns the count."""
    buckets = samples(families, name, f"{name}_bucket", **labels)
    assert buckets, f"no {name} buckets for {labels}"
    series: dict[tuple, list[tuple[float, float]]] = {}
    for s in buckets:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, []).append((float(s.labels["le"]), s.value))
    total = 0
    for key, points in series.items():
        bounds = [le for le, _ in points]
        counts = [c for _, c in points]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds) and bounds[-1] == math.inf
        assert all(a <= b for a, b in zip(counts, counts[1:], strict=False)), f"{name}{key} falls: {counts}"
        key_labels = dict(key)
        count = value(families, name, f"{name}_count", **key_labels)
        assert counts[-1] == count, f"{name}{key}: +Inf bucket {counts[-1]} != count {count}"
        assert 0 <= value(families, name, f"{name}_sum", **key_labels) < math.inf
        total += int(count)
    return total
