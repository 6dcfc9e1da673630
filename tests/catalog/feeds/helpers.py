"""Shared by the feed parser tests: a fixed clock, the fixture folder, and record sorting."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog.feeds import FeedError, FeedFormat, FeedProduct, FeedRecord, parse_feed

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feeds"


def parse_bytes(data: bytes, fmt: FeedFormat, **options: Any) -> list[FeedRecord]:
    options.setdefault("now", NOW)
    return list(parse_feed(io.BytesIO(data), fmt, **options))


def products(records: list[FeedRecord]) -> dict[str, FeedProduct]:
    found = [r for r in records if isinstance(r, FeedProduct)]
    by_sku = {p.sku: p for p in found}
    assert len(by_sku) == len(found), "a sku came out twice"
    return by_sku


def errors(records: list[FeedRecord]) -> list[FeedError]:
    return [r for r in records if isinstance(r, FeedError)]


def codes(records: list[FeedRecord]) -> list[tuple[str | None, str]]:
    return [(e.variant or e.sku, e.code) for e in errors(records)]
