"""Choosing the beam a collection's graph is searched with, by measured recall@10 against exact search.

Queries are midpoints of two of the collection's own points (a shopper's photo is in no collection,
and the points themselves are far easier queries); each beam of a ladder is tried, cheapest first,
and the first whose recall reaches the target is kept. The trial needs an exact search per query,
which reads every original vector of the collection: on Qdrant Edge it runs in the build's child
process, on the copy it has just built, so the web process never maps the whole collection (a
million 256-d originals are 1 GB of its RSS) nor spends a core on the exact scans while it serves.
A Qdrant server does the same work in its own process, so there the trial runs through the client.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .base import Beam, SearchFilter, VectorStore


@dataclass(frozen=True, slots=True)
class BeamTrial:
    """What to try: the ladder (cheapest first), the recall to reach, how many queries, the filter
    every search carries."""

    beams: tuple[Beam, ...]
    target: float
    queries: int = 200
    flt: SearchFilter | None = None
    seed: int = 0
    # Image ids are random UUIDs and a store pages in id order, so the first points of a scroll are a
    # random sample; queries are drawn from this many of them.
    pool: int = 4000

    def as_dict(self) -> dict[str, Any]:
        return {
            "beams": [b.as_dict() for b in self.beams],
            "target": self.target,
            "queries": self.queries,
            "flt": None if self.flt is None else asdict(self.flt),
            "seed": self.seed,
            "pool": self.pool,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeamTrial:
        beams = tuple(b for b in (Beam.from_dict(d) for d in data["beams"]) if b is not None)
        flt = data.get("flt")
        return cls(
            beams=beams,
            target=float(data["target"]),
            queries=int(data["queries"]),
            flt=None if flt is None else SearchFilter(**flt),
            seed=int(data.get("seed", 0)),
            pool=int(data.get("pool", 4000)),
        )


@dataclass
class BeamChoice:
    beam: Beam | None  # None: no beam reached the target; the collection stays exact
    recall_at_10: float
    queries: int
    curve: list[dict[str, Any]] = field(default_factory=list)  # each beam tried: recall, median ms

    def as_dict(self) -> dict[str, Any]:
        return {
            "beam": None if self.beam is None else self.beam.as_dict(),
            "recall_at_10": self.recall_at_10,
            "queries": self.queries,
            "curve": self.curve,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeamChoice:
        beam = data.get("beam")
        return cls(
            beam=None if beam is None else Beam.from_dict(beam),
            recall_at_10=float(data["recall_at_10"]),
            queries=int(data["queries"]),
            curve=list(data.get("curve", [])),
        )


def sample_queries(
    store: VectorStore, collection: str, count: int, *, seed: int = 0, pool: int = 4000
) -> list[list[float]]:
    """``count`` unit vectors, each the midpoint of two points of the collection drawn at random."""
    ids: list[str] = []
    for image_id, _payload in store.scroll_ids(collection, batch=1000):
        ids.append(image_id)
        if len(ids) >= pool:
            break
    rng = random.Random(seed)
    chosen = rng.sample(ids, min(2 * count, len(ids) - len(ids) % 2))
    found = store.retrieve(collection, chosen, with_vectors=True)
    vectors = [
        np.asarray(found[i][0], dtype=np.float32) for i in chosen if found.get(i, (None,))[0] is not None
    ]
    queries = []
    for a, b in zip(vectors[0::2], vectors[1::2], strict=False):
        mid = a + b
        norm = float(np.linalg.norm(mid))
        if norm > 1e-6:
            queries.append((mid / norm).tolist())
    return queries


def recall_at_10(
    store: VectorStore,
    collection: str,
    queries: list[list[float]],
    beam: Beam,
    *,
    flt: SearchFilter | None = None,
    truth: list[set[str]] | None = None,
) -> tuple[float, float, list[set[str]]]:
    """Recall@10 of a beam against exact search, the median query time with it, and the exact
    neighbour sets (pass them back to save work)."""
    if truth is None:
        truth = [
            {h.image_id for h in store.search(collection, q, 10, flt, group_by_product=False)}
            for q in queries
        ]
    found = total = 0
    times: list[float] = []
    for query, expected in zip(queries, truth, strict=True):
        start = time.perf_counter()
        hits = store.search(collection, query, 10, flt, group_by_product=False, beam=beam)
        times.append((time.perf_counter() - start) * 1000.0)
        found += len(expected.intersection(h.image_id for h in hits))
        total += len(expected)
    times.sort()
    return (found / total if total else 1.0), (times[len(times) // 2] if times else 0.0), truth


def run_trial(store: VectorStore, collection: str, trial: BeamTrial) -> BeamChoice:
    sample = sample_queries(store, collection, trial.queries, seed=trial.seed, pool=trial.pool)
    choice = BeamChoice(beam=None, recall_at_10=0.0, queries=len(sample))
    truth: list[set[str]] | None = None
    for beam in trial.beams:
        recall, median_ms, truth = recall_at_10(store, collection, sample, beam, flt=trial.flt, truth=truth)
        choice.curve.append(
            {**beam.as_dict(), "recall_at_10": round(recall, 4), "median_ms": round(median_ms, 3)}
        )
        choice.recall_at_10 = max(choice.recall_at_10, recall)
        if recall >= trial.target:
            choice.beam, choice.recall_at_10 = beam, recall
            break
    return choice
