"""The search dashboard's charts: matplotlib PNGs drawn on the server, returned as data: URLs so the
admin page needs no extra requests and no JavaScript."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime

from search import log_selectors

DPI = 100
SIZE = (6.4, 2.8)  # inches: 640 x 280 px


@dataclass(frozen=True)
class Chart:
    title: str
    data_url: str | None  # None when there is nothing to plot yet
    alt: str


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=SIZE)


def _daily_chart(title: str, days: list, values: list, ylabel: str, kind: str = "line") -> str:
    fig, ax = _figure()
    if kind == "bar":
        ax.bar(days, values, color="#2563eb")
    else:
        ax.plot(days, values, marker="o", color="#2563eb")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def _barh(title: str, rows: list[tuple[int, str, int]], xlabel: str) -> str:
    fig, ax = _figure()
    labels = [(t if len(t) <= 40 else t[:39] + "…") for _, t, _ in rows][::-1]
    ax.barh(labels, [n for _, _, n in rows][::-1], color="#2563eb")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def charts(days: int = 30, now: datetime | None = None) -> list[Chart]:
    stats = log_selectors.daily_stats(days, now)
    day_list = [s.day for s in stats]
    verdicts = [(s.day, s.no_match_rate) for s in stats if s.no_match_rate is not None]
    ctr = [p for p in log_selectors.click_through_by_position(days, now=now) if p.shown]
    clicked = log_selectors.most_clicked_products(days, now=now)
    missed = log_selectors.most_missed_products(days, now=now)
    out = [
        Chart(
            "Searches per day",
            _daily_chart("Searches per day", day_list, [s.searches for s in stats], "searches", "bar")
            if stats
            else None,
            "Bar chart of the number of searches per day.",
        ),
        Chart(
            "p95 latency",
            _daily_chart("p95 search latency", day_list, [s.p95_latency_ms for s in stats], "ms")
            if stats
            else None,
            "Line chart of the 95th percentile search latency per day, in milliseconds.",
        ),
        Chart(
            "No-match rate",
            _daily_chart(
                "Searches answered 'no exact match'",
                [day for day, _ in verdicts],
                [100 * rate for _, rate in verdicts],
                "% of searches",
            )
            if verdicts
            else None,
            "Line chart of the share of searches with no exact match per day (calibrated models only).",
        ),
    ]
    if ctr:
        fig, ax = _figure()
        ax.bar([p.position for p in ctr], [100 * p.rate for p in ctr], color="#2563eb")
        ax.set_xlabel("result position")
        ax.set_ylabel("% of searches showing it")
        ax.set_title("Click-through by position")
        ax.set_xticks([p.position for p in ctr])
        out.append(
            Chart(
                "Click-through by position", _png(fig), "Bar chart of click-through rate per result position."
            )
        )
    else:
        out.append(Chart("Click-through by position", None, ""))
    out.append(
        Chart(
            "Most clicked products",
            _barh("Most clicked products", clicked, "clicks") if clicked else None,
            "Bar chart of the products clicked most often.",
        )
    )
    out.append(
        Chart(
            "Most missed products",
            _barh("Shown first, no click at all", missed, "searches") if missed else None,
            "Bar chart of the products most often shown first by searches that got no click.",
        )
    )
    return out
