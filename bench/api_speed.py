"""API photo search over HTTP against the old bare reference, timed alternately in one run.

    .venv/bin/python -m bench.api_speed                      # about 6 minutes; var/bench/api_speed.json
    .venv/bin/python -m bench.api_speed --queries 100 --photos-per-product 4

The model issue's speed target: an API photo search (HTTP, the embedded gunicorn) at most as slow as
what a search cost before the product had a model worth the name, a bare embedding:

  * API: POST /api/v1/search/ with a Grocery test-split photo, over a fresh loopback connection, to
    gunicorn started with ``platform/gunicorn.embedded.conf.py`` (the served model in-process: the
    settings decide int8 or float). Wall time at the client, from sending the request to the last
    byte of the answer: HTTP parsing, Django and DRF, decoding, embedding, the vector search, the
    words on the pack when the answer is not clear-cut (as a shop has it: ``--no-text`` turns that
    off), the catalog read and the JSON.
  * Reference: the same photo's bytes decoded and resized to 224 px with Pillow (``ml.preprocess``)
    and embedded at batch 1 by MobileNetV2-0.35 (ImageNet weights from ../shared/weights) exported as
    a SavedModel and run in the TF runtime (``ml.serving.savedmodel.LocalEmbedder``): the project's
    first bootstrap model on its first runtime. It runs in this process, while gunicorn idles.

Each photo is sent both ways, the order alternating photo by photo, after warm-up calls of each; the
two never overlap, so each has the two cores to itself.

The shop: the Grocery catalog (81 products, each its web-shop image and ``--photos-per-product`` train
photos) imported with the project's own commands into a scratch embedded install under var/bench/
(bench.load's set-up). With 500 photos or more the import queues the compact pretrained model, which
the server makes and promotes before the clock starts: a shop's search runs on that model. The words
on every catalog image are read before the clock starts too (what the background reader does after
an import), so photo searches can be re-ranked by them and no reading runs beside the timed ones.

Writes var/bench/api_speed.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, missing_inputs
from bench.load import _manage, _multipart, _request, _setup, _start_gunicorn, _stop_gunicorn

REFERENCE_WEIGHTS = REPO / ".." / "shared" / "weights" / "mobilenet_v2_0.35_224_imagenet_no_top.weights.h5"
REFERENCE_SIZE = 224
WARMUP = 10
JOBS_TIMEOUT_S = 1800


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


def _db(workdir: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{workdir / 'db.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _await_jobs(workdir: Path, timeout_s: float) -> list[tuple]:
    """Until no job is queued or running (the import's follow-ups: the compact model, its reindex)."""
    deadline = time.monotonic() + timeout_s
    while True:
        open_jobs = _db(
            workdir, "SELECT id, kind, state FROM search_job WHERE state IN ('queued', 'running')"
        )
        if not open_jobs:
            return _db(workdir, "SELECT id, kind, state FROM search_job ORDER BY id")
        if time.monotonic() > deadline:
            raise SystemExit(f"jobs still open after {timeout_s:.0f} s: {open_jobs}")
        time.sleep(2)


def _served_model(workdir: Path) -> dict[str, Any]:
    rows = _db(
        workdir,
        "SELECT version, kind, embedding_dim, image_size FROM search_modelversion WHERE status = 'active'",
    )
    if not rows:
        raise SystemExit("no active model after the set-up")
    version, kind, dim, size = rows[0]
    return {"version": version, "kind": kind, "dim": dim, "image_size": size}


def _reference(workdir: Path) -> Any:
    """The old bootstrap model as a SavedModel in the TF runtime (no TFLite file: it did not exist)."""
    from ml.export import export_saved_model
    from ml.model import build_embedding_model
    from ml.serving.savedmodel import LocalEmbedder

    net = build_embedding_model(
        backbone="mobilenet_v2_035",
        weights=REFERENCE_WEIGHTS.resolve(),
        image_size=REFERENCE_SIZE,
        head=False,
        pooling="avg",
    )
    exported = export_saved_model(net, workdir / "reference", "reference", 1, tflite=False)
    return LocalEmbedder(exported.path, max_batch=1)


def _search(port: int, data: bytes) -> tuple[float, dict[str, Any]]:
    body, ctype = _multipart("image", "photo.jpg", data)
    started = time.perf_counter()
    status, answer = _request(port, "/api/v1/search/", body, ctype, {}, timeout=30)
    wall = (time.perf_counter() - started) * 1000
    if status != 200:
        raise SystemExit(f"the search answered {status}: {answer[:300]!r}")
    return wall, json.loads(answer)


def _bare(embedder: Any, data: bytes) -> float:
    from ml.preprocess import preprocess

    started = time.perf_counter()
    pixels = preprocess(data, REFERENCE_SIZE)
    embedder.embed(pixels[None])
    return (time.perf_counter() - started) * 1000


def measure(port: int, embedder: Any, photos: list[bytes]) -> dict[str, Any]:
    """Each photo through the API and through the reference, alternating which goes first."""
    for data in photos[:WARMUP]:
        _search(port, data)
        _bare(embedder, data)
    api: list[float] = []
    bare: list[float] = []
    stages: dict[str, list[float]] = {}
    read = 0
    reranked = 0
    for n, data in enumerate(photos):
        for step in ("api", "bare") if n % 2 == 0 else ("bare", "api"):
            if step == "bare":
                bare.append(_bare(embedder, data))
                continue
            wall, answer = _search(port, data)
            api.append(wall)
            timings = answer["timings_ms"]
            for stage, ms in timings.items():
                stages.setdefault(stage, []).append(ms)
            read += timings.get("read_text", 0.0) > 0
            reranked += bool(answer.get("reranked_by_text"))
    not_read = [w for w, t in zip(api, stages.get("read_text", [0.0] * len(api)), strict=True) if t == 0]
    bare_not_read = [
        b for b, t in zip(bare, stages.get("read_text", [0.0] * len(api)), strict=True) if t == 0
    ]
    return {
        "api_ms": _percentiles(api),
        "reference_ms": _percentiles(bare),
        "ratio_p50": round(statistics.median(api) / statistics.median(bare), 3),
        # The searches whose photo was not read (a clear-cut visual answer), against the same photos'
        # reference times: what every search costs before the words on the pack are wanted.
        "not_read": {
            "api_ms": _percentiles(not_read) if not_read else None,
            "reference_ms": _percentiles(bare_not_read) if bare_not_read else None,
            "ratio_p50": round(statistics.median(not_read) / statistics.median(bare_not_read), 3)
            if not_read
            else None,
        },
        "photos_read": read,
        "reranked_by_text": reranked,
        "stages_p50_ms": {k: round(statistics.median(v), 2) for k, v in stages.items()},
    }


def _table(report: dict[str, Any]) -> str:
    r = report["result"]
    m = report["served_model"]
    lines = [
        f"served: v{m['version']} {m['kind']}, {m['dim']}-d, {m['image_size']} px, {m['embeds_with']}; "
        f"catalog {report['catalog_images']} images",
        f"{'':<28} {'p50 ms':>8} {'p95 ms':>8} {'n':>5}",
        f"{'API photo search (HTTP)':<28} {r['api_ms']['p50']:>8} {r['api_ms']['p95']:>8} {r['api_ms']['n']:>5}",
        f"{'reference (bare, TF runtime)':<28} {r['reference_ms']['p50']:>8} {r['reference_ms']['p95']:>8} "
        f"{r['reference_ms']['n']:>5}",
        f"API / reference, p50: {r['ratio_p50']}x",
    ]
    nr = r["not_read"]
    if nr["api_ms"]:
        lines.append(
            f"searches not read ({nr['api_ms']['n']}): API p50 {nr['api_ms']['p50']} ms vs reference "
            f"{nr['reference_ms']['p50']} ms = {nr['ratio_p50']}x; photos read {r['photos_read']}, "
            f"re-ranked {r['reranked_by_text']}"
        )
    lines.append("API stages, p50 ms: " + ", ".join(f"{k} {v}" for k, v in r["stages_p50_ms"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Grocery Store Dataset folder")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="the served backbone's weights")
    parser.add_argument("--queries", type=int, default=300, help="test photos, each sent both ways")
    parser.add_argument("--photos-per-product", type=int, default=8, help="train photos per catalog product")
    parser.add_argument("--no-text", action="store_true", help="SEARCH_TEXT_RERANK off in the server")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "api_speed.json")
    args = parser.parse_args(argv)
    reason = missing_inputs(args.data, args.weights, "test")
    if reason is None and not REFERENCE_WEIGHTS.is_file():
        reason = f"skipped: no reference weights at {REFERENCE_WEIGHTS}"
    if reason:
        print(reason)
        return 0
    from ml.grocery import split_items
    from ml.train import machine_description

    test = [path for path, _ in split_items(args.data, "test")]
    chosen = sorted(random.Random(args.seed).sample(test, min(args.queries, len(test))))
    photos = [Path(p).read_bytes() for p in chosen]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-api-speed-", dir=args.out.parent) as tmp:
        workdir = Path(tmp)
        print("set-up: the bootstrap model and the Grocery catalog ...", flush=True)
        env, _token = _setup(
            workdir, args.data, str(args.weights), photos_per_product=args.photos_per_product
        )
        if args.no_text:
            env["SEARCH_TEXT_RERANK"] = "false"
        server, _ = _start_gunicorn(env, workdir, args.port, args.threads)
        try:
            print("waiting for the import's follow-up jobs (the compact model) ...", flush=True)
            jobs = _await_jobs(workdir, JOBS_TIMEOUT_S)
            served = _served_model(workdir)
            # Which file embeds in the server (int8 or float, and why), as the admin shows it.
            served["embeds_with"] = (
                _manage(
                    env,
                    "shell",
                    "-c",
                    "from search.embedders import serving_precision; from search.selectors import active_model; "
                    "print(serving_precision(active_model()))",
                )
                .strip()
                .splitlines()[-1]
            )
            # The server opened its embedder before the follow-ups promoted a new model; start it anew
            # so the timed searches meet a warm process on the model a shop now has. In between, the
            # words on the catalog images still unread are read here, so no background reading shares
            # the cores with the timed searches.
            _stop_gunicorn(server)
            text = _manage(env, "read_image_text", timeout=3600).strip().splitlines()
            print(text[-1] if text else "", flush=True)
            unread = _db(
                workdir,
                "SELECT COUNT(*) FROM catalog_productimage i LEFT JOIN search_imagetext t "
                "ON t.image_id = i.id WHERE t.image_id IS NULL",
            )[0][0]
            if unread:
                raise SystemExit(f"{unread} catalog images still have no text read")
            server, _ = _start_gunicorn(env, workdir, args.port, args.threads)
            print("the reference model ...", flush=True)
            embedder = _reference(workdir)
            setup_s = round(time.perf_counter() - started, 1)
            print(f"timing {len(photos)} photos both ways ...", flush=True)
            load_start = os.getloadavg()
            result = measure(args.port, embedder, photos)
            load_end = os.getloadavg()
        finally:
            _stop_gunicorn(server)
        images = _db(workdir, "SELECT COUNT(*) FROM catalog_productimage")[0][0]
    report = {
        "benchmark": "API photo search over HTTP vs the old bare reference (bench/api_speed.py)",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "queries": len(photos),
        "catalog_images": images,
        "served_model": served,
        "text_rerank": not args.no_text,
        "gunicorn_threads": args.threads,
        "jobs": [{"id": i, "kind": k, "state": s} for i, k, s in jobs],
        "reference": {
            "model": "MobileNetV2-0.35, ImageNet weights, avg pooled 1280-d",
            "image_size": REFERENCE_SIZE,
            "runtime": "TF SavedModel in-process, batch 1",
            "decode": "Pillow (ml.preprocess)",
        },  # fmt: skip
        "result": result,
        "setup_s": setup_s,
        "wall_s": round(time.perf_counter() - started, 1),
        "load_avg_start": load_start,
        "load_avg_end": load_end,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    print(f"\n{report['wall_s']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
