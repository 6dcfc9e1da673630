"""Reads of the search log: the dashboard's series, and shoppers' clicks as training examples."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from catalog.models import Product
from search import photo_storage
from search.models import SearchClick, SearchLog


def logs_since(days: int, now: datetime | None = None) -> QuerySet[SearchLog]:
    since = (now or timezone.now()) - timedelta(days=days)
    return SearchLog.objects.filter(created_at__gte=since)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class DayStats:
    day: date
    searches: int
    p95_latency_ms: float
    no_match_rate: float | None  # among searches with a verdict; None when none had one


def daily_stats(days: int = 30, now: datetime | None = None) -> list[DayStats]:
    """Searches, p95 latency and no-match rate per day (UTC), oldest first; days without searches left out."""
    rows = (
        logs_since(days, now)
        .annotate(day=TruncDate("created_at"))
        .values_list("day", "latency_ms", "no_match")
        .order_by()
    )
    latencies: dict[date, list[float]] = defaultdict(list)
    verdicts: dict[date, list[bool]] = defaultdict(list)
    for day, latency, no_match in rows.iterator():
        latencies[day].append(latency)
        if no_match is not None:
            verdicts[day].append(no_match)
    return [
        DayStats(
            day=day,
            searches=len(values),
            p95_latency_ms=round(_percentile(values, 0.95), 1),
            no_match_rate=(sum(verdicts[day]) / len(verdicts[day])) if verdicts[day] else None,
        )
        for day, values in sorted(latencies.items())
    ]


@dataclass(frozen=True)
class PositionStats:
    position: int
    shown: int  # searches that had a result at this position
    clicked: int  # of those, how many had a click on it
    rate: float


def click_through_by_position(
    days: int = 30, positions: int = 12, now: datetime | None = None
) -> list[PositionStats]:
    logs = logs_since(days, now)
    shown = logs.aggregate(
        **{f"p{k}": Count("pk", filter=Q(result_count__gte=k)) for k in range(1, positions + 1)}
    )
    clicked = dict(
        SearchClick.objects.filter(search__in=logs, position__lte=positions)
        .values("position")
        .annotate(n=Count("search", distinct=True))
        .values_list("position", "n")
    )
    stats = []
    for k in range(1, positions + 1):
        n, c = shown[f"p{k}"], clicked.get(k, 0)
        stats.append(PositionStats(k, n, c, c / n if n else 0.0))
    return stats


def _with_titles(counts: list[tuple[int, int]]) -> list[tuple[int, str, int]]:
    titles = dict(Product.objects.filter(pk__in=[pid for pid, _ in counts]).values_list("pk", "title"))
    return [(pid, titles.get(pid, f"deleted product {pid}"), n) for pid, n in counts]


def most_clicked_products(
    days: int = 30, limit: int = 10, now: datetime | None = None
) -> list[tuple[int, str, int]]:
    """(product id, title, clicks), most clicked first."""
    rows = (
        SearchClick.objects.filter(search__in=logs_since(days, now), product__isnull=False)
        .values("product_id")
        .annotate(n=Count("pk"))
        .order_by("-n", "product_id")
        .values_list("product_id", "n")[:limit]
    )
    return _with_titles(list(rows))


def most_missed_products(
    days: int = 30, limit: int = 10, now: datetime | None = None
) -> list[tuple[int, str, int]]:
    """(product id, title, searches): products shown first by searches that got no click at all, the
    answers shoppers passed over most often."""
    rows = (
        logs_since(days, now)
        .filter(top_product_id__isnull=False)
        .annotate(clicked=Exists(SearchClick.objects.filter(search=OuterRef("pk"))))
        .filter(clicked=False)
        .values("top_product_id")
        .annotate(n=Count("pk"))
        .order_by("-n", "top_product_id")
        .values_list("top_product_id", "n")[:limit]
    )
    # The filter leaves no row without a product; the comprehension tells the type checker so.
    return _with_titles([(product_id, n) for product_id, n in rows if product_id is not None])


@dataclass(frozen=True)
class FeedbackExample:
    """One click on a search made with a kept photo: the photo shows the clicked product (a positive
    pair), and not the products ranked above it that the shopper skipped (hard negatives: they looked
    most like the photo to the model, and the shopper saw them and passed)."""

    search_id: str
    photo_path: str
    crop: tuple[int, int, int, int] | None
    product_id: int
    sku: str
    negative_product_ids: tuple[int, ...]
    negative_skus: tuple[str, ...]


@dataclass
class FeedbackTally:
    """What feedback_examples made of the clicks it read: how many it trusted, and why it dropped the
    others. A script can search with limit=100 and "click" any product it was shown, again and
    again; only clicks a shopper could have made on a real result list, once per search, count, and
    a product gains weight from distinct clients, not from one client's repeats."""

    trusted: int = 0
    past_shown: int = 0  # at a position past what a result list shows (SEARCH_FEEDBACK_MAX_POSITION)
    repeat_in_search: int = 0  # a further click in a search that already gave one
    repeat_by_client: int = 0  # a client clicking a product it had already clicked in another search
    unusable: int = 0  # the product was deleted, or the photo's file is gone
    held_for_gate: int = 0  # trusted, but kept out of training to judge the next model (held_for_gate)

    @property
    def dropped(self) -> int:
        return self.past_shown + self.repeat_in_search + self.repeat_by_client + self.unusable

    def summary(self) -> str:
        return (
            f"Shoppers' clicks: {self.trusted} trusted, {self.dropped} dropped ({self.past_shown} past "
            f"position {settings.SEARCH_FEEDBACK_MAX_POSITION}, {self.repeat_in_search} more in a search "
            f"already counted, {self.repeat_by_client} repeats of a client's click on the same product, "
            f"{self.unusable} on deleted products or purged photos){self._held_note()}."
        )

    def _held_note(self) -> str:
        return f"; {self.held_for_gate} more held out for the evaluation gate" if self.held_for_gate else ""


# One shopper in this many is kept out of training: their clicked photos are what the evaluation gate
# compares models on where the catalog has no held-out photo (one photo per product; search/services/gate.py).
GATE_BUCKETS = 5


def held_for_gate(client: str) -> bool:
    """Whether a client's clicks are held out of training for the gate: a fixed fifth of clients, by a
    hash of the client key, so a model trained on clicks never saw the photos the gate judges it on,
    and a shopper's retakes of one product (near-twin frames) all fall on the same side."""
    return hashlib.sha256(client.encode()).digest()[0] % GATE_BUCKETS == 0


FEEDBACK_PARTS = ("all", "train", "gate")


def feedback_examples(
    *,
    since: datetime | None = None,
    skipped: str = "above",
    tally: FeedbackTally | None = None,
    part: str = "all",
) -> Iterator[FeedbackExample]:
    """Shoppers' clicks as training data, from searches whose photo is still kept (SEARCH_LOG_PHOTOS).

    Which clicks are trusted (``tally``, when given, counts what was trusted and dropped, and why):
    only at positions 1..SEARCH_FEEDBACK_MAX_POSITION (what a real result list shows, though the API
    answers up to 100); only the first click of a search; and one click per client and product, so a
    product's weight is the number of distinct clients who chose it (searches logged before clients
    were recorded count as a client each).

    ``skipped="above"`` takes as negatives the results shown above the click (shoppers scan from the
    top, so those were seen and passed over); ``"all"`` takes every result shown but not clicked.
    Products clicked in the same search are never negatives; deleted products and missing photo files
    are left out.

    ``part``: "train" leaves out the clients held out for the evaluation gate (``held_for_gate``; the
    tally counts them), "gate" yields only theirs, "all" both.
    """
    if skipped not in ("above", "all"):
        raise ValueError(f"skipped must be 'above' or 'all', got {skipped!r}")
    if part not in FEEDBACK_PARTS:
        raise ValueError(f"part must be one of {FEEDBACK_PARTS}, got {part!r}")
    tally = tally if tally is not None else FeedbackTally()
    max_position = settings.SEARCH_FEEDBACK_MAX_POSITION
    logs = (
        SearchLog.objects.filter(photo__isnull=False, clicks__isnull=False).select_related("photo").distinct()
    )
    if since is not None:
        logs = logs.filter(created_at__gte=since)
    chosen_by: set[tuple[str, int]] = set()  # (client, product) pairs already counted
    for search in logs.order_by("created_at", "pk").iterator(chunk_size=500):
        clicks = list(
            search.clicks.filter(product__isnull=False)
            .order_by("created_at", "pk")
            .values_list("position", "product_id")
        )
        shown_clicks = [(pos, pid) for pos, pid in clicks if pos <= max_position]
        tally.past_shown += len(clicks) - len(shown_clicks)
        if not shown_clicks:
            continue
        tally.repeat_in_search += len(shown_clicks) - 1
        position, product_id = shown_clicks[0]
        clicked_ids = {pid for _, pid in clicks}  # never negatives, counted or not
        client = search.client or f"search:{search.pk}"
        if (client, product_id) in chosen_by:
            tally.repeat_by_client += 1
            continue
        assert search.photo is not None  # the query keeps only searches with a photo
        path = photo_storage.path_of(search.photo.file)
        shown = [(r["position"], r["product_id"]) for r in search.results if r["position"] <= max_position]
        skus = dict(
            Product.objects.filter(pk__in={pid for _, pid in shown} | {product_id}).values_list("pk", "sku")
        )
        if product_id not in skus or not path.is_file():
            tally.unusable += 1
            continue
        chosen_by.add((client, product_id))
        held = held_for_gate(client)
        if part != "all" and held != (part == "gate"):
            if held:
                tally.held_for_gate += 1
            continue
        tally.trusted += 1
        negatives = [
            pid
            for pos, pid in shown
            if pid not in clicked_ids and pid in skus and (skipped == "all" or pos < position)
        ]
        yield FeedbackExample(
            search_id=str(search.pk),
            photo_path=str(path),
            crop=tuple(search.crop) if search.crop else None,
            product_id=product_id,
            sku=skus[product_id],
            negative_product_ids=tuple(negatives),
            negative_skus=tuple(skus[pid] for pid in negatives),
        )


def logs_with_vector(model_version: int) -> QuerySet[SearchLog]:
    """The photo searches of ``model_version`` that still hold their query vector (a partial index)."""
    return SearchLog.objects.filter(model_version=model_version, query_vector__isnull=False)


def query_vector_count(model_version: int, since: datetime | None = None) -> int:
    """Photo searches logged with their query vector for ``model_version`` (after ``since``)."""
    logs = logs_with_vector(model_version)
    return (logs.filter(created_at__gt=since) if since is not None else logs).count()


def recent_query_vectors(model_version: int, limit: int, dim: int) -> np.ndarray:
    """The query vectors of the most recent ``limit`` photo searches of ``model_version`` [n, dim],
    unit length (float32); a vector of another length (a log written under another model) is skipped."""
    rows = (
        logs_with_vector(model_version).order_by("-created_at").values_list("query_vector", flat=True)[:limit]
    )
    vectors = [np.frombuffer(bytes(raw), dtype=np.float16) for raw in rows if raw is not None]
    kept = [v.astype(np.float32) for v in vectors if v.shape == (dim,)]
    if not kept:
        return np.zeros((0, dim), np.float32)
    stacked = np.stack(kept)
    norms = np.linalg.norm(stacked, axis=1)
    unit: np.ndarray = stacked[norms > 0] / norms[norms > 0, None]
    return unit
