"""Building a Qdrant Edge collection's graph off the request path.

Qdrant Edge builds HNSW and quantized vectors only inside ``EdgeShard.optimize()``, which holds the
Python GIL until it returns (measured here: a thread looping beside a 90 s build ran once). Called in
the web process it would stop every search for minutes, so the build runs on a copy, in a child
process at lower priority:

1. holding the shard's write lock (writes wait as long as the copy takes; searches do not, since a
   search writes nothing to the files): flush, copy the folder, start a journal of the writes that
   follow;
2. a child process (``python -m search.vector_store.edge_build``, in the idle scheduling class) opens
   the copy with the IndexSpec's config and optimizes it, then runs the beam trial on it
   (beam_trial.py: its exact searches read every vector, which the web process should neither map
   nor pay for); the live shard keeps answering (exactly) and taking writes meanwhile;
3. holding both locks (the one pause for searches): close the live shard, open the copy (Edge's load
   holds the GIL too, 5 s at 1M points, so opening it beside the live one would stall searches just
   the same and hold both in memory), replay the journal on it, flush, make it the shard every caller
   uses, and point the collection's name (a link to its generation folder) at it with one atomic
   rename. The old generation is deleted after. A crash at any step leaves the name on a complete
   generation; leftovers are hidden ``.gen-*`` and ``.deleting-*`` folders, removed by the next build.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import qdrant_edge as qe

from .base import BuildReport, IndexSpec, VectorStoreError
from .beam_trial import BeamChoice, BeamTrial, run_trial
from .edge import new_generation, point_name_at

if TYPE_CHECKING:
    from .edge import EdgeVectorStore, _Shard

_REPO_ROOT = Path(__file__).resolve().parents[2]
# How often a running build says it is still running.
LOG_EVERY_S = 30.0
# The name the copy goes by in the child's scratch store, while the beam trial runs on it.
TRIAL_COLLECTION = "trial"


def build_threads(spec: IndexSpec) -> int:
    """Threads the child may build with: all cores but one, so searches keep one (at least one)."""
    return spec.build_threads or max(1, (os.cpu_count() or 2) - 1)


def build_on_copy(
    store: EdgeVectorStore,
    name: str,
    entry: _Shard,
    spec: IndexSpec,
    log: Callable[[str], None],
    trial: BeamTrial | None = None,
) -> BuildReport:
    root = store.root
    live = (root / name).resolve()
    for stale in list(root.glob(f".{name}.gen-*")) + list(root.glob(f".{name}.deleting-*")):
        if stale.resolve() != live:
            shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    state = store.index_state(name)
    if not state.needs_graph(spec):
        log(
            f"{name}: {state.points} points ({state.vector_bytes / 1e6:.1f} MB of vectors) stay exact: "
            f"below the indexing threshold ({spec.indexing_threshold_kb} KB)"
        )
        return BuildReport(points=state.points, indexed=state.indexed, seconds=0.0)
    work = new_generation(root, name)
    with entry.write_lock:
        pause = time.monotonic()
        with entry.lock:
            entry.shard.flush()
        shutil.copytree(live, work)
        entry.journal = []
        copy_pause_ms = (time.monotonic() - pause) * 1000.0
    threads = build_threads(spec)
    log(
        f"{name}: copied {state.points} points ({copy_pause_ms / 1000:.1f} s); building the graph and int8 "
        f"vectors in a child process on {threads} thread(s)"
    )
    try:
        child = _run_child(work, entry.dim or 0, spec, threads, log, trial)
        swap_ms, indexed = _swap_in(store, name, entry, work)
    except BaseException:
        with entry.lock:
            entry.journal = None
        shutil.rmtree(work, ignore_errors=True)
        raise
    seconds = time.monotonic() - started
    log(
        f"{name}: graph covers {indexed}/{state.points} points after {seconds:.0f} s "
        f"(child peak RSS {child.get('peak_rss_mb', 0):.0f} MB; writes waited {copy_pause_ms:.0f} ms for the "
        f"copy, searches {swap_ms:.0f} ms for the swap)"
    )
    return BuildReport(
        points=state.points,
        indexed=indexed,
        seconds=seconds,
        peak_rss_mb=child.get("peak_rss_mb"),
        swap_pause_ms=swap_ms,
        copy_pause_ms=copy_pause_ms,
        choice=BeamChoice.from_dict(child["choice"]) if child.get("choice") else None,
    )


def _run_child(
    work: Path, dim: int, spec: IndexSpec, threads: int, log: Callable[[str], None], trial: BeamTrial | None
) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    args = [sys.executable, "-m", "search.vector_store.edge_build", str(work), str(dim)]
    args += [json.dumps(spec.as_dict()), str(threads), json.dumps(trial.as_dict() if trial else None)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    started = last_log = time.monotonic()
    try:
        while proc.poll() is None:
            time.sleep(0.5)
            if time.monotonic() - last_log >= LOG_EVERY_S:
                last_log = time.monotonic()
                # The caller may raise here (a cancelled job): the finally below stops the child.
                log(f"building: {last_log - started:.0f} s so far")
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        tail = " ".join((err or "").strip().splitlines()[-3:])[:500]
        raise VectorStoreError(f"building the index failed (exit {proc.returncode}): {tail}")
    try:
        return dict(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError) as exc:
        raise VectorStoreError(f"building the index gave no report: {out[-300:]!r}") from exc


def _swap_in(store: EdgeVectorStore, name: str, entry: _Shard, work: Path) -> tuple[float, int]:
    """Make the built copy the live shard, with the writes it missed replayed on it."""
    previous_target = (store.root / name).resolve()
    with entry.write_lock, entry.lock:
        pause = time.monotonic()
        # No flush of the live shard first: every write is in its WAL (a reopen after a failed swap
        # replays it), and the writes since the copy go to the new shard from the journal. Each flush
        # here is a pause for every search (100-300 ms).
        entry.shard.close()
        try:
            shard = qe.EdgeShard.load(str(work))
            journal = entry.journal or []
            for op in journal:
                shard.update(op)
            if journal:
                shard.flush()
            indexed = int(shard.info().indexed_vectors_count)
        except BaseException:
            # The copy would not open or take the writes: the live generation serves again.
            entry.shard = qe.EdgeShard.load(str(previous_target))
            entry.journal = None
            raise
        entry.shard = shard
        entry.journal = None
        entry.inactive_points = None
        entry.last_flush = time.monotonic()
        moved = point_name_at(store.root, name, work)
        swap_ms = (time.monotonic() - pause) * 1000.0
    # Nothing below may raise: the copy is live now, and the caller's cleanup would delete it.
    # The generation it replaced (or, in a store from before generations, the real folder moved aside).
    shutil.rmtree(moved if moved is not None else previous_target, ignore_errors=True)
    return swap_ms, indexed


def yield_to_searches() -> str:
    """Put this process in Linux's idle scheduling class (SCHED_IDLE), or failing that at nice 10;
    threads it starts later inherit it. Says which.

    At nice 10 a rebuild at 1,000,000 points still doubled the searches' p50 beside it (59 against
    30 ms, 2026-12-07): a search's embedding wakes threads on both cores, and a niced builder keeps a
    share of the one it is on. A task of the idle class runs only on a core nothing else wants and is
    preempted as soon as a search's thread wakes there. Lowering one's own class needs no privilege.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    os.nice(10)
    return "nice 10"


def _child_main(path: str, dim: int, spec_json: str, threads: int, trial_json: str) -> None:
    from .edge import engine_config

    yield_to_searches()  # searches in the parent come first
    spec = IndexSpec(**{**json.loads(spec_json), "build_threads": threads})
    shard = qe.EdgeShard.load(path, engine_config(dim, spec))
    shard.optimize()
    shard.flush()
    info = shard.info()
    shard.close()
    report: dict[str, Any] = {"points": info.points_count, "indexed": info.indexed_vectors_count}
    trial = json.loads(trial_json)
    if trial and info.indexed_vectors_count:
        report["choice"] = _trial_on_copy(Path(path), BeamTrial.from_dict(trial)).as_dict()
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(report), flush=True)


def _trial_on_copy(path: Path, trial: BeamTrial) -> BeamChoice:
    """The beam trial through the gateway, on the built copy: a store of its own (a scratch root whose
    one collection links to the copy), since the live root is locked by the serving process."""
    from .edge import EdgeVectorStore

    scratch = Path(tempfile.mkdtemp(prefix="beam-trial-"))
    try:
        os.symlink(path.resolve(), scratch / TRIAL_COLLECTION)
        store = EdgeVectorStore(scratch)
        try:
            return run_trial(store, TRIAL_COLLECTION, trial)
        finally:
            store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the link only; the copy it named stays


if __name__ == "__main__":
    _child_main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
