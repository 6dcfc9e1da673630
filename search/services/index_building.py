"""Building a collection's graph off the request path, and choosing the beam (``hnsw_ef`` and int8
rescoring) it is searched with by measuring recall@10 against exact search on queries made from the
collection's own points (each with itself left out of its answers). The store runs that trial where it costs the
serving process least (on Qdrant Edge, in the build's child process: search/vector_store/beam_trial.py).

The choice is stored with the collection's model version (``ModelVersion.index``); the search service
passes its beam (``ModelVersion.search_beam``) to the store, and a collection without one is searched
exactly. Collections whose vectors stay under the IndexSpec's indexing threshold are never given a graph: an exact scan is
as fast there. Who runs this: the "optimize_index" job (search/jobs/kinds/optimize_index.py), the reindex
job before its gate, and the sweeper when too much of the active collection is outside the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from search import selectors
from search.models import ModelVersion
from search.vector_store import INDEX_SPEC, Beam, BeamTrial, IndexSpec, SearchFilter, run_trial, vector_store

log = logging.getLogger(__name__)

# Beams tried, cheapest first; the first whose recall@10 reaches RECALL_TARGET is kept. int8 scoring
# caps recall however wide the walk (1M PCA vectors, ef 512 rescoring 2x: 0.919), so the ladder widens
# the rescoring too, and ends scoring the walk on the original vectors (oversampling None).
# It starts at ef 128 rescoring 4x: the trial's queries (the collection's own points) overstate a
# shopper's recall at the cheapest beams of a large collection. Measured on 1M whitened points
# (bench/scale.py, 100 Grocery test photos against own points, self left out): ef 32 / 2x 0.883 vs
# 0.964, ef 64 / 4x 0.939 vs 0.990, ef 128 / 4x 0.962 vs 0.992, ef 256 / 8x 0.988 vs 0.995; at 100k
# the photos got 0.977 / 0.994 at ef 64 / 128. ef 128 / 4x is the cheapest beam whose photos' recall
# passed 0.95 at both sizes.
BEAMS = (
    Beam(128, 4.0),
    Beam(128, 8.0),
    Beam(256, 8.0),
    Beam(128, None),
    Beam(256, None),
    Beam(512, None),
    Beam(1024, None),
)
# The queries are the collection's own points, each with itself left out of its answers (a shopper's
# photo is in no collection; the point's nearest are then its product's other photos): they tracked
# the shoppers' recall within 0.01 at 100k (search/vector_store/beam_trial.py) but not at the ladder's
# cheapest beams at 1M (above). 200 queries x 10 neighbours measure it to about +-0.01.
RECALL_TARGET = 0.97
SAMPLE_QUERIES = 200
# The sweeper asks for a new build once this share of a graph-sized collection is outside the graph
# (an exact scan of it is added to every search until then).
UNINDEXED_SHARE_MAX = 0.10
JOB_KIND = "optimize_index"
# Every search of the API carries this filter (deactivated products never show), so recall is
# measured with it.
SEARCH_FILTER = SearchFilter(active=True)
TRIAL = BeamTrial(beams=BEAMS, target=RECALL_TARGET, queries=SAMPLE_QUERIES, flt=SEARCH_FILTER)


def index_optimize(
    model: ModelVersion, *, spec: IndexSpec = INDEX_SPEC, log_line: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Build the graph of ``model``'s collection (if it is large enough), choose its ``hnsw_ef`` and
    store both on the model version; returns what was stored."""
    say = log_line or log.info
    store = vector_store()
    store.ensure_collection(model.collection, model.embedding_dim)
    report = store.build_index(model.collection, spec, progress=say, trial=TRIAL)
    state = store.index_state(model.collection)
    index: dict[str, Any] = {
        "points": state.points,
        "indexed": state.indexed,
        "segments": state.segments,
        "spec": spec.as_dict(),
        "built_at": timezone.now().isoformat(),
        "build_s": round(report.seconds, 1),
        "build_peak_rss_mb": report.peak_rss_mb and round(report.peak_rss_mb),
        "search_pause_ms": report.swap_pause_ms and round(report.swap_pause_ms),
        "write_pause_ms": report.copy_pause_ms and round(report.copy_pause_ms),
        "hnsw_ef": None,
        "oversampling": None,
        "recall_at_10": None,
    }
    if state.indexed == 0:
        say(f"v{model.version}: {state.points} points, searched exactly (no graph needed)")
    else:
        # A graph left from before (the collection shrank under the threshold since) has no trial from
        # this build; the collection is small then, and the trial cheap here.
        choice = report.choice or run_trial(store, model.collection, TRIAL)
        index.update(
            **(choice.beam.as_dict() if choice.beam else {}),
            recall_at_10=round(choice.recall_at_10, 4),
            queries=choice.queries,
            curve=choice.curve,
        )
        if choice.beam is None:
            say(
                f"v{model.version}: no beam reached recall@10 {RECALL_TARGET} (best {choice.recall_at_10:.3f}); "
                "searches stay exact"
            )
        else:
            say(
                f"v{model.version}: {beam_text(choice.beam)} gives recall@10 {choice.recall_at_10:.3f} against exact "
                f"on {choice.queries} queries between its points ({choice.curve[-1]['median_ms']:.1f} ms median)"
            )
    model_index_set(model, index)
    return index


def beam_text(beam: Beam) -> str:
    rescoring = (
        "walk on the originals" if beam.oversampling is None else f"int8, {beam.oversampling:g}x rescored"
    )
    return f"hnsw_ef {beam.ef} ({rescoring})"


def model_index_set(model: ModelVersion, index: dict[str, Any]) -> None:
    ModelVersion.objects.filter(pk=model.pk).update(index=index)
    model.index = index
    selectors.forget_active_model()


def index_optimize_if_due() -> bool:
    """The sweeper's check: queue an optimize job when the active collection is large enough for a
    graph and too much of it is outside one. True if a job was queued."""
    from search.jobs.records import job_submit

    model = selectors.active_model()
    if model is None or selectors.open_jobs().filter(kind=JOB_KIND).exists():
        return False
    state = vector_store().index_state(model.collection)
    if not state.needs_graph() or state.unindexed_share <= UNINDEXED_SHARE_MAX:
        return False
    job_submit(kind=JOB_KIND, params={"model": model.version}, requested_by="sweeper")
    log.info(
        "v%s: %.0f%% of %d points outside the graph; optimize job queued",
        model.version,
        100 * state.unindexed_share,
        state.points,
    )
    return True
