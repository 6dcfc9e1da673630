"""Choosing the beam a collection's graph is searched with, by measured recall@10 against exact search.

The queries are points of the collection itself, each searched for as a new photo of its product
would be: with itself left out of the answers, so its nearest neighbours are the product's other
photos and its look-alikes. Measured on 100,000 points of the whitened default model (bench/scale.py's
synthetic catalog, Grocery test photos as the shoppers), that tracked the shoppers' recall within
0.01 at every beam (e.g. 0.982 / 0.983 / 0.988 where the photos got 0.977 / 0.994 / 0.999), while
midpoints of two random points, the queries used before, fell 0.05-0.14 below it: a point halfway
between two unrelated products has no clear neighbours in whitened space, so the ladder climbed to
ef 1024 on the originals (9.5 ms) for what ef 64 gives a shopper. At a million points the own points
overstate the cheapest beams instead (ef 32: 0.964 where the photos got 0.883), so the caller's ladder
starts where the photos' recall was measured to hold (search/services/index_building.py). Each beam
of the ladder is tried, cheapest first, and the first whose recall reaches the target is kept.

The trial needs an exact search per query, which reads every original vector of the collection: on
Qdrant Edge it runs in the build's child process, on the copy it has just built, so the web process
never maps the whole collection (a million 256-d originals are 1 GB of its RSS) nor spends a core on
the exact scans while it serves. A Qdrant server does the same work in its own process, so there the
trial runs through the client.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

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
) -> list[tuple[str, list[float]]]:
    """``count`` points of the collection drawn at random: (image id, vector)."""
    ids: list[str] = []
    for image_id, _payload in store.scroll_ids(collection, batch=1000):
        ids.append(image_id)
        if len(ids) >= pool:
            break
    chosen = random.Random(seed).sample(ids, min(count, len(ids)))
    found = store.retrieve(collection, chosen, with_vectors=True)
    vectors = {i: found[i][0] for i in chosen if i in found}
    return [(i, list(vector)) for i, vector in vectors.items() if vector is not None]


# A beam's hit counts when it is one of the exact ten, or scores as high as the tenth (less this): a
# tie, as near-duplicate photos make, is as good an answer whichever of the tied points comes back
# (ann-benchmarks counts recall with a distance tolerance for the same reason).
TIE_TOLERANCE = 1e-5


@dataclass(frozen=True, slots=True)
class _Truth:
    ids: frozenset[str]
    tenth_score: float


def _neighbours(
    store: VectorStore,
    collection: str,
    query: tuple[str, list[float]],
    beam: Beam | None,
    flt: SearchFilter | None,
) -> list[tuple[str, float]]:
    """The query's 10 nearest points other than itself, with their scores."""
    own_id, vector = query
    hits = store.search(collection, vector, 11, flt, group_by_product=False, beam=beam)
    return [(h.image_id, h.score) for h in hits if h.image_id != own_id][:10]


def recall_at_10(
    store: VectorStore,
    collection: str,
    queries: list[tuple[str, list[float]]],
    beam: Beam,
    *,
    flt: SearchFilter | None = None,
    truth: list[_Truth] | None = None,
) -> tuple[float, float, list[_Truth]]:
    """Recall@10 of a beam against exact search, the median query time with it, and the exact
    neighbours (pass them back to save work)."""
    if truth is None:
        truth = []
        for query in queries:
            exact = _neighbours(store, collection, query, None, flt)
            truth.append(_Truth(frozenset(i for i, _ in exact), exact[-1][1] if exact else 0.0))
    found = total = 0
    times: list[float] = []
    for query, expected in zip(queries, truth, strict=True):
        start = time.perf_counter()
        got = _neighbours(store, collection, query, beam, flt)
        times.append((time.perf_counter() - start) * 1000.0)
        found += sum(
            1 for i, score in got if i in expected.ids or score >= expected.tenth_score - TIE_TOLERANCE
        )
        total += len(expected.ids)
    times.sort()
    return (found / total if total else 1.0), (times[len(times) // 2] if times else 0.0), truth


def run_trial(store: VectorStore, collection: str, trial: BeamTrial) -> BeamChoice:
    sample = sample_queries(store, collection, trial.queries, seed=trial.seed, pool=trial.pool)
    choice = BeamChoice(beam=None, recall_at_10=0.0, queries=len(sample))
    truth: list[_Truth] | None = None
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
