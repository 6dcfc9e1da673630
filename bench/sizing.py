"""Sizing: memory, disk and build time of a collection by dimension and by how its vectors are kept.

    .venv/bin/python -m bench.sizing                         # 100,000 points per layout, about 10 minutes
    .venv/bin/python -m bench.sizing --points 50000 --out var/bench/sizing.json

For each dimension (256: the compact pretrained model; 1280: the raw one) and each layout (the
project's IndexSpec: int8 in RAM with the originals on disk; and the originals in RAM), a Qdrant Edge
collection of clustered points is written through the gateway and its
graph built by the project's own build (a child process on a copy). Then a fresh process opens it, as
a restarted server would, and answers 200 searches through the graph: its resident memory split into
anonymous (what the process must hold) and file-backed (page cache of mapped files, which the kernel
can drop), the search p50, and the folder's size. Figures per million points are the measured ones
scaled linearly (the graph and every vector store grow linearly with the points). Writes JSON and
prints a table; docs/scaling.md keeps the latest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import REPO
from bench.procfs import status_mib

# The placement of the original vectors is what a rebuild can change: a shard opened with a config
# that leaves quantization unspecified (None) keeps the int8 vectors it was created with, so both
# layouts carry them.
LAYOUTS = {
    "int8 in RAM, originals on disk (the default)": {},
    "int8 in RAM, originals in RAM": {"vectors_on_disk": False},
}
DIMS = (256, 1280)
BEAM = {"hnsw_ef": 128, "oversampling": 8.0}


def _clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(max(1, n // 5), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _build(path: Path, dim: int, points: int, layout: dict[str, Any]) -> dict[str, Any]:
    from search.vector_store import EdgeVectorStore, IndexSpec

    rng = np.random.default_rng(dim)
    store = EdgeVectorStore(path, flush_interval_s=5.0)
    store.ensure_collection("c", dim)
    t0 = time.perf_counter()
    for start in range(0, points, 10_000):
        x = _clustered(min(10_000, points - start), dim, rng)
        store.upsert(
            "c",
            [
                (str(uuid.UUID(int=start + i + 1)), v, {"product_id": (start + i) // 5, "category": "a"})
                for i, v in enumerate(x)
            ],
            batch_size=1000,
        )
    write_s = time.perf_counter() - t0
    report = store.build_index("c", IndexSpec(**layout))
    store.close()
    return {
        "write_s": round(write_s, 1),
        "build_s": round(report.seconds, 1),
        "build_peak_rss_mb": round(report.peak_rss_mb or 0),
    }


def _serve(path: str, dim: int) -> None:
    """In a fresh process: open the store, search through the graph, report memory and latency."""
    from search.vector_store import Beam, EdgeVectorStore

    def status() -> dict[str, float]:
        return status_mib("self", "VmRSS", "VmHWM", "RssAnon", "RssFile")

    before = status()
    t0 = time.perf_counter()
    store = EdgeVectorStore(path)
    store.index_state("c")
    open_s = time.perf_counter() - t0
    rng = np.random.default_rng(99)
    queries = _clustered(200, dim, rng)
    times = []
    for q in queries:
        t1 = time.perf_counter()
        store.search("c", q, 10, group_by_product=False, beam=Beam(BEAM["hnsw_ef"], BEAM["oversampling"]))
        times.append((time.perf_counter() - t1) * 1000)
    after = status()
    store.close()
    times.sort()
    print(
        json.dumps(
            {
                "open_s": round(open_s, 2),
                "search_p50_ms": round(times[len(times) // 2], 2),
                "rss_mb": round(after["VmRSS"] - before["VmRSS"]),
                "anon_mb": round(after["RssAnon"] - before["RssAnon"]),
                "file_mb": round(after["RssFile"] - before["RssFile"]),
                "peak_mb": round(after["VmHWM"] - before["VmRSS"]),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "sizing.json")
    args = parser.parse_args(argv)
    work = REPO / "var" / "bench" / "sizing"
    rows = []
    scale = 1_000_000 / args.points
    for dim in DIMS:
        for name, layout in LAYOUTS.items():
            shutil.rmtree(work, ignore_errors=True)
            built = _build(work, dim, args.points, layout)
            env = dict(os.environ, PYTHONPATH=str(REPO))
            done = subprocess.run(
                [sys.executable, "-m", "bench.sizing", "--serve", str(work), str(dim)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            served = json.loads(done.stdout.strip().splitlines()[-1])
            disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 1e6
            row = {
                "dim": dim,
                "layout": name,
                "points": args.points,
                **built,
                **served,
                "disk_mb": round(disk),
            }
            row["per_million"] = {
                "resident_mb": round(served["anon_mb"] * scale),
                "page_cache_mb": round(served["file_mb"] * scale),
                "disk_mb": round(disk * scale),
                "build_s": round(built["build_s"] * scale),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    report = {
        "benchmark": "sizing",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "beam": BEAM,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"{'dim':>5}  {'layout':<46} {'resident':>9} {'cache':>7} {'disk':>7} {'build':>7}  (per million points)"
    )
    for r in rows:
        pm = r["per_million"]
        print(
            f"{r['dim']:>5}  {r['layout']:<46} {pm['resident_mb']:>6} MB {pm['page_cache_mb']:>4} MB "
            f"{pm['disk_mb']:>4} MB {pm['build_s']:>5} s"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit(main())
