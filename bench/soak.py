"""Soak: searches and uploads against gunicorn for many minutes; errors, p95 over time and memory.

    .venv/bin/python -m bench.soak                       # 20 min, 4 searches/s + 1 upload every 2 s
    .venv/bin/python -m bench.soak --minutes 2 --out var/bench/soak.json

The install, gunicorn and the request helpers are bench/load.py's (an embedded install under var/bench/
with the Grocery catalog, ``platform/gunicorn.embedded.conf.py`` on 127.0.0.1, open-loop requests with
a timeout each), and the catalog's text read (``manage.py read_image_text``) before the server
starts. What this adds is time: a load test shows the first minute, a soak shows whether the
serving process holds up after thousands of requests:

  * every request is bucketed by the minute it was scheduled in: requests, errors, p50/p95 per minute;
  * a warm-up (``--warmup``, 1 min) sends the same mix first, not counted: the process's lazily built
    parts (the catalog's text reader at the first upload, the allocator's per-thread pools) settle
    there, so the first measured minute is the steady state a leak is measured against;
  * the gunicorn worker's resident memory (VmRSS, with its anonymous and file-backed parts) is sampled
    every 5 s from the warm-up on (times in the JSON are seconds from the measured start, so the
    warm-up's are negative); the growth (the target's figure) is the median of the last window
    (``--window``, 5 min) against the first window's. A minute's median swings by 30-60 MiB (5-10 %)
    with the requests in flight when a sample is taken: two 20-minute runs of the same code measured
    +5.3 % and +11.8 % by first and last minute, +0.7 % by first and last 5 minutes. The JSON keeps
    the minute figure too, the least-squares line through every measured sample and every window's
    median, so a steady level and a steady climb can be told apart;
  * uploads never run out: each is a val-split photo re-encoded with its own sequence number in a
    corner, so every one is a new image (the catalog deduplicates identical bytes per product);
  * at the end every upload answered 201 must be indexed, as in bench/load.py.

Targets (issue 19): 0 errors, memory growth <= 5 %, p95 in the last minute <= 1.2x the first.
Writes JSON (``--out``) and prints a per-minute table.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench import trace_growth
from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, missing_inputs
from bench.load import (
    _await_indexed,
    _db_rows,
    _manage,
    _multipart,
    _percentile,
    _request,
    _schedule,
    _send_open_loop,
    _setup,
    _start_gunicorn,
    _stop_gunicorn,
)
from bench.procfs import status_mib

# /proc/<pid>/status fields sampled: the resident total, then its two parts. Anonymous pages are the
# process's own (heap, arenas, thread stacks): a leak shows there. File pages are mapped files (the
# vector store's segments, the model, libraries) paged in as searches touch them: they grow as new
# points and the page cache's share of the process grow, and the kernel can drop them.
RSS_FIELDS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}


def _rss_mib(pid: int) -> dict[str, float]:
    """The process's resident memory in MiB: total (``rss``) and its anonymous and file-backed parts."""
    found = status_mib(pid, *RSS_FIELDS)
    return {name: found.get(field, float("nan")) for field, name in RSS_FIELDS.items()}


def _unique_jpeg(data: bytes, seq: int) -> bytes:
    """The photo with ``seq`` drawn as a few pixels in a corner: new bytes and a new image each time."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    pixels = img.load()
    for bit in range(24):
        on = (seq >> bit) & 1
        pixels[bit % img.width, 0] = (255, 255, 255) if on else (0, 0, 0)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.stop = threading.Event()
        self.samples: list[tuple[float, dict[str, float]]] = []  # (seconds since start, MiB by kind)
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while True:
            try:
                self.samples.append((time.perf_counter() - self.t0, _rss_mib(self.pid)))
            except OSError:
                return  # the worker is gone; the run reports it as errors
            if self.stop.wait(self.every):
                return


def _window_median(
    samples: list[tuple[float, dict[str, float]]], lo: float, hi: float
) -> dict[str, float] | None:
    """Each part's median over the samples taken in [lo, hi) seconds; None where there are none."""
    part = [m for t, m in samples if lo <= t < hi]
    if not part:
        return None
    return {k: statistics.median(m[k] for m in part) for k in RSS_FIELDS.values()}


def _first_and_last(
    samples: list[tuple[float, dict[str, float]]], window_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """The medians of the first and the last ``window_s`` measured seconds (the growth the target
    reads); the first or last sample itself where a window holds none."""
    last_t = samples[-1][0]
    start = _window_median(samples, 0, window_s) or samples[0][1]
    end = _window_median(samples, last_t - window_s, last_t + 1) or samples[-1][1]
    return start, end


def _memory_trend(samples: list[tuple[float, dict[str, float]]], window_s: float = 300.0) -> dict[str, Any]:
    """Readings of the whole run beside the target's two windows: the least-squares line through every
    measured sample (its value at the start and the end, and its slope), and the medians of
    consecutive ``window_s``-long windows, so a steady level and a steady climb can be told apart."""
    import numpy as np

    measured = [(t, m) for t, m in samples if t >= 0]
    if len(measured) < 3:
        return {}
    t = np.array([t for t, _ in measured])
    out: dict[str, Any] = {}
    for key in RSS_FIELDS.values():
        y = np.array([m[key] for _, m in measured])
        slope, start = np.polyfit(t, y, 1)
        end = start + slope * t[-1]
        out[key] = {
            "line_start": round(float(start), 1),
            "line_end": round(float(end), 1),
            "line_growth_pct": round(float(100 * (end - start) / start), 2),
            "mib_per_min": round(float(60 * slope), 2),
            "window_medians": [
                round(float(np.median(part)), 1)
                for a in np.arange(0.0, t[-1], window_s)
                if (part := y[(t >= a) & (t < a + window_s)]).size
            ],
        }
    return out


def _per_minute(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    minutes: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        minutes.setdefault(int(r["offset_s"] // 60), []).append(r)
    rows = []
    for m in sorted(minutes):
        rs = minutes[m]
        ok = [1000 * r["latency_s"] for r in rs if r["kind"] == "search" and r["status"] == 200]
        rows.append(
            {
                "minute": m + 1,
                "requests": len(rs),
                "errors": sum(1 for r in rs if r["status"] not in (200, 201)),
                "search_p50_ms": round(statistics.median(ok), 1) if ok else None,
                "search_p95_ms": round(_percentile(ok, 0.95), 1) if ok else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Grocery Store checkout")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="'imagenet' or a weights file")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds of the same mix first, not counted"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=300.0,
        help="seconds at the start and at the end whose median memory the growth compares (at most a quarter of the run)",
    )
    parser.add_argument("--search-rate", type=float, default=4.0, help="searches per second")
    parser.add_argument("--upload-rate", type=float, default=0.5, help="uploads per second")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads (THREADS)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    parser.add_argument("--drain", type=float, default=150.0, help="max wait for uploads to index, s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--trace-python",
        action="store_true",
        help="run the worker under tracemalloc (bench/gunicorn_traced.conf.py) and report which Python "
        "call sites grew between the measured start and end; its latency and memory are then not figures",
    )
    parser.add_argument("--trace-every", type=float, default=60.0, help="seconds between snapshots")
    parser.add_argument("--out", type=Path, default=Path("var/bench/soak.json"))
    args = parser.parse_args(argv)

    skip = missing_inputs(args.data, args.weights, "val")
    if skip:
        print(skip)
        return 0
    os.chdir(REPO)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    queries = sorted((args.data / "dataset" / "test").rglob("*.jpg"))
    sources = sorted((args.data / "dataset" / "val").rglob("*.jpg"))
    rng.shuffle(queries)
    rng.shuffle(sources)
    query_bytes = [p.read_bytes() for p in queries[:400]]
    source_bytes = [p.read_bytes() for p in sources[:200]]
    duration = 60 * args.minutes
    n_search, n_upload = int(duration * args.search_rate), int(duration * args.upload_rate)

    report: dict[str, Any] = {
        "benchmark": "soak (gunicorn embedded: 1 process, threads, eager tasks)",
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "minutes": args.minutes,
        "offered": {"search_per_s": args.search_rate, "upload_per_s": args.upload_rate},
    }
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-soak-", dir=args.out.parent) as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        env, token = _setup(workdir, args.data, args.weights)
        # The catalog's text, read as a shop's would have been at ingest: the import above ran in a
        # command that exited before its background reader got to the photos, and the web process's
        # sweep would otherwise read the whole backlog (405 photos, minutes of OCR) during the soak,
        # a one-time job that a steady-state memory measurement must not include.
        t_text = time.perf_counter()
        _manage(env, "read_image_text", timeout=3600)
        report["catalog_text_read_s"] = round(time.perf_counter() - t_text, 1)
        db = workdir / "db.sqlite3"
        report["setup_s"] = round(time.perf_counter() - t0, 1)
        products = [r[0] for r in _db_rows(db, "SELECT id FROM catalog_product")]
        print(f"{len(products)} products (setup {report['setup_s']} s)", flush=True)
        traced: dict[str, str] = {}  # the embedded config unless traced
        if args.trace_python:
            traced["config"] = "bench/gunicorn_traced.conf.py"
            (workdir / "trace").mkdir()
            env = dict(env, SOAK_TRACE_DIR=str(workdir / "trace"), SOAK_TRACE_EVERY_S=str(args.trace_every))
            report["traced"] = True
        server, worker_pid = _start_gunicorn(env, workdir, args.port, args.threads, **traced)
        try:
            for i in range(10):  # warm-up (graph tracing, page cache), not counted
                body, ctype = _multipart("image", "q.jpg", query_bytes[-1 - i])
                _request(args.port, "/api/v1/search/", body, ctype, {}, args.timeout)

            schedule = _schedule(n_search, args.search_rate, n_upload, args.upload_rate)
            lock = threading.Lock()
            auth = {"Authorization": f"Token {token}"}

            warm_results: list[dict[str, Any]] = []

            def fire(sink: list[dict[str, Any]], offset: float, start_at: float, kind: str, i: int) -> None:
                if kind == "search":
                    body, ctype = _multipart("image", "q.jpg", query_bytes[i % len(query_bytes)])
                    path, headers = "/api/v1/search/", {}
                else:
                    data = _unique_jpeg(source_bytes[i % len(source_bytes)], i)
                    body, ctype = _multipart("image", f"u{i}.jpg", data)
                    path, headers = f"/api/v1/products/{products[i % len(products)]}/images/", auth
                try:
                    status, payload = _request(args.port, path, body, ctype, headers, args.timeout)
                    error = None
                except OSError as exc:  # timeouts and refused connections are errors too
                    status, payload, error = 0, b"", f"{type(exc).__name__}: {exc}"
                row = {
                    "kind": kind,
                    "offset_s": offset,
                    "status": status,
                    "latency_s": time.perf_counter() - start_at,
                    "error": error,
                }
                if kind == "upload" and status == 201:
                    row["image_id"] = json.loads(payload)["id"]
                with lock:
                    sink.append(row)

            rss = RssSampler(worker_pid)
            rss.start()
            if args.warmup > 0:
                # Sequence numbers past the measured run's, so warm-up uploads are new images too.
                warm = _schedule(
                    int(args.warmup * args.search_rate),
                    args.search_rate,
                    int(args.warmup * args.upload_rate),
                    args.upload_rate,
                )
                _send_open_loop(
                    [(o, k, i + n_search + n_upload) for o, k, i in warm],
                    functools.partial(fire, warm_results),
                )
            measured_from = time.perf_counter() - rss.t0
            measured_wall = time.time()
            wall = _send_open_loop(schedule, functools.partial(fire, results))
            if args.trace_python:
                # The worker's last snapshot inside the measured run is at most one interval old.
                report["python_growth"] = trace_growth.growth(workdir / "trace", measured_wall, time.time())
            rss.stop.set()
            rss.join()
            rss.samples = [(t - measured_from, mib) for t, mib in rss.samples]
            report["warmup"] = {
                "seconds": args.warmup,
                "requests": len(warm_results),
                "errors": sum(1 for r in warm_results if r["status"] not in (200, 201)),
            }

            wanted = {uuid.UUID(r["image_id"]).hex for r in results if r.get("image_id")}
            status_of, not_indexed, _waited = _await_indexed(db, wanted, args.drain)
        finally:
            _stop_gunicorn(server)
            if any(r["status"] >= 500 for r in results):
                # The server's own account of them: its warnings and errors (an access log is most of
                # the file, so its tail alone would miss them), then the log's last lines.
                lines = (workdir / "gunicorn.log").read_text(errors="replace").splitlines()
                noted = [line for line in lines if " WARNING " in line or " ERROR " in line][:60]
                report["server_errors_log"] = noted
                report["server_errors_tail"] = lines[-40:]
                print("\n".join(noted + lines[-40:]), flush=True)

    minutes = _per_minute(results)
    window = min(args.window, args.minutes * 60 / 4)
    start, end = _first_and_last(rss.samples, window)
    first_min, last_min = _first_and_last(rss.samples, 60)
    errors = [r for r in results if r["status"] not in (200, 201)]
    p95_first, p95_last = minutes[0]["search_p95_ms"], minutes[-1]["search_p95_ms"]
    report.update(
        wall_s=round(wall, 1),
        requests={kind: sum(1 for r in results if r["kind"] == kind) for kind in ("search", "upload")},
        errors=len(errors),
        error_rate=round(len(errors) / max(1, len(results)), 5),
        errors_by_kind=dict(
            sorted(
                {
                    k: sum(1 for r in errors if f"{r['kind']} {r['status']}" == k)
                    for k in {f"{r['kind']} {r['status']}" for r in errors}
                }.items()
            )
        ),
        per_minute=minutes,
        p95_last_over_first=round(p95_last / p95_first, 2) if p95_first and p95_last else None,
        # The target's figure is the resident total, first window against last; its parts say what grew.
        memory_mib={
            "window_s": round(window, 1),
            "start": round(start["rss"], 1),
            "end": round(end["rss"], 1),
            "growth_pct": round(100 * (end["rss"] - start["rss"]) / start["rss"], 2),
            "minute_growth_pct": round(100 * (last_min["rss"] - first_min["rss"]) / first_min["rss"], 2),
            "parts": {k: {"start": round(start[k], 1), "end": round(end[k], 1)} for k in ("anon", "file")},
            "trend": _memory_trend(rss.samples, window),
            "samples": [
                (round(t, 1), *(round(m[k], 1) for k in RSS_FIELDS.values())) for t, m in rss.samples
            ],
            "sample_columns": ["seconds", *RSS_FIELDS.values()],
        },
        uploads_check={"created_201": len(wanted), "not_indexed": len(not_indexed)},
    )
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print("\n| minute | requests | errors | search p50 ms | search p95 ms |")
    print("| --- | --- | --- | --- | --- |")
    for m in minutes:
        print(
            f"| {m['minute']} | {m['requests']} | {m['errors']} | {m['search_p50_ms']} | {m['search_p95_ms']} |"
        )
    mem = report["memory_mib"]
    print(
        f"\n{len(results)} requests in {report['wall_s']} s, {len(errors)} errors {report['errors_by_kind']}; "
        f"p95 last/first minute {report['p95_last_over_first']}; gunicorn RSS, median of the first and "
        f"last {mem['window_s']:.0f} s, {mem['start']} -> {mem['end']} MiB ({mem['growth_pct']:+.2f} %; by "
        f"first and last minute {mem['minute_growth_pct']:+.2f} %; anonymous {mem['parts']['anon']['start']} -> "
        f"{mem['parts']['anon']['end']}, mapped files {mem['parts']['file']['start']} -> "
        f"{mem['parts']['file']['end']}); uploads {len(wanted)} answered 201, {len(not_indexed)} not "
        f"indexed; wrote {args.out}"
    )
    targets_met = (
        not errors
        and not not_indexed
        and mem["growth_pct"] <= 5
        and (report["p95_last_over_first"] or 0) <= 1.2
    )
    if "python_growth" in report:
        traced = report["python_growth"]
        print(f"\nPython (tracemalloc), measured start -> end: {json.dumps(traced, indent=1)[:6000]}")
    for key, line in mem["trend"].items():
        print(
            f"  {key}: line through every sample {line['line_start']} -> {line['line_end']} MiB "
            f"({line['line_growth_pct']:+.2f} %, {line['mib_per_min']} MiB/min); {window:.0f}-second medians "
            f"{line['window_medians']}"
        )
    print("targets met" if targets_met else "targets NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
