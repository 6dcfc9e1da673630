"""Qdrant Edge through the project's vector store: upsert throughput and search latency.

    .venv/bin/python -m bench.vector_store                 # 10k and 100k points
    .venv/bin/python -m bench.vector_store --sizes 10000   # quicker

Writes var/bench/vector_store.json. Synthetic data: unit 128-d vectors drawn around 2,000 cluster
centres (catalog embeddings cluster by product and category; uniform noise would be unrealistically
hard for the grouping's over-fetch), 3 images per product, 20 categories, prices 1-500.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from search.vector_store import EdgeVectorStore, SearchFilter, collection_name

DIM = 128
IMAGES_PER_PRODUCT = 3
CATEGORIES = [f"cat-{i:02d}" for i in range(20)]


def make_points(n: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray, dict[str, Any]]]:
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), size=n)] + 0.5 * rng.normal(size=(n, DIM)).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    points = []
    for i in range(n):
        pid = i // IMAGES_PER_PRODUCT + 1
        payload = {
            "product_id": pid,
            "sku": f"SKU-{pid}",
            "category": CATEGORIES[pid % len(CATEGORIES)],
            "price": float(1 + (pid * 37) % 500),
            "in_stock": pid % 5 != 0,
            "model_version": "bench",
        }
        points.append((str(uuid.UUID(int=i + 1)), vectors[i], payload))
    return points


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(s), 3),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 3),
        "mean_ms": round(statistics.fmean(s), 3),
    }


def bench_size(n: int, queries: int, workdir: Path, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    points = make_points(n, rng)
    gen_s = time.perf_counter() - t0
    root = workdir / f"edge-{n}"
    shutil.rmtree(root, ignore_errors=True)
    coll = collection_name("bench")
    result: dict[str, Any] = {"points": n, "dim": DIM, "generate_s": round(gen_s, 2)}

    store = EdgeVectorStore(root)

    def upsert_all(name: str, call_size: int) -> dict[str, Any]:
        store.ensure_collection(name, DIM)
        t0 = time.perf_counter()
        for start in range(0, n, call_size):
            store.upsert(name, points[start : start + call_size])
        took = time.perf_counter() - t0
        return {"call_size": call_size, "total_s": round(took, 3), "points_per_s": round(n / took)}

    # As indexing tasks would: calls of 1,000 points, each flushed (fsync) before it returns.
    result["upsert"] = upsert_all(coll, 1000)
    # A bulk load: one call, one flush at the end (the flush cost is per call, not per point).
    result["upsert_one_call"] = upsert_all("bulk", n)
    store.drop_collection("bulk")
    store.flush_interval_s = 5.0  # the Qdrant server's own flush interval: WAL-only durability
    result["upsert_flush_interval_5s"] = upsert_all("lazy", 1000)
    store.drop_collection("lazy")
    store.flush_interval_s = 0.0
    # Replaying every point (a re-run task) must leave the count unchanged.
    t0 = time.perf_counter()
    store.upsert(coll, points[:1000])
    result["replay_1000_s"] = round(time.perf_counter() - t0, 4)
    assert store.count(coll) == n

    single = []
    for i in range(50):
        iid, vec, payload = points[i]
        t0 = time.perf_counter()
        store.upsert(coll, [(iid, vec, payload)])
        single.append((time.perf_counter() - t0) * 1000)
    result["single_upsert_with_flush"] = percentiles(single)

    qvecs = rng.normal(size=(queries, DIM)).astype(np.float32)
    # Queries near real points, as a shopper's photo of a catalog product would be.
    qvecs = np.stack([points[int(j)][1] for j in rng.integers(0, n, size=queries)]) + 0.3 * qvecs / np.sqrt(
        DIM
    )

    def timed(flt_for: Any, grouped: bool) -> dict[str, float]:
        samples = []
        for q_i, q in enumerate(qvecs):
            flt = flt_for(q_i)
            t0 = time.perf_counter()
            hits = store.search(coll, q, limit=20, filter=flt, group_by_product=grouped)
            samples.append((time.perf_counter() - t0) * 1000)
            if grouped:
                assert len({h.product_id for h in hits}) == len(hits)
        return percentiles(samples)

    def filtered(q_i: int) -> SearchFilter:
        cats = [CATEGORIES[q_i % 20], CATEGORIES[(q_i * 7 + 3) % 20]]
        return SearchFilter(categories=cats, min_price=10.0, max_price=400.0, in_stock=True)

    result["search_limit_20"] = {
        "unfiltered_ungrouped": timed(lambda _: None, False),
        "unfiltered_grouped": timed(lambda _: None, True),
        "filtered_grouped": timed(filtered, True),
    }
    result["filtered_selectivity"] = round(store.count(coll, filtered(0)) / n, 3)
    store.close()

    t0 = time.perf_counter()
    store = EdgeVectorStore(root)
    store.count(coll)  # the shard loads on first use
    result["reopen_s"] = round(time.perf_counter() - t0, 3)
    store.close()
    shutil.rmtree(root, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("var/bench/vector_store.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "vector_store (Qdrant Edge, exact search)",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "queries_per_case": args.queries,
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-vs-", dir=args.out.parent) as tmp:
        for n in args.sizes:
            t0 = time.perf_counter()
            res = bench_size(n, args.queries, Path(tmp), args.seed)
            res["wall_s"] = round(time.perf_counter() - t0, 1)
            report["results"].append(res)
            up, srch = res["upsert"], res["search_limit_20"]
            print(
                f"{n:>7} pts: upsert {up['points_per_s']:>7}/s (1k calls), "
                f"{res['upsert_one_call']['points_per_s']}/s (one call) | filtered grouped search "
                f"p50 {srch['filtered_grouped']['p50_ms']} ms p95 {srch['filtered_grouped']['p95_ms']} ms | "
                f"unfiltered grouped p50 {srch['unfiltered_grouped']['p50_ms']} ms | reopen {res['reopen_s']} s",
                flush=True,
            )
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
