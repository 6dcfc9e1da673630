"""Load: concurrent image searches and uploads against gunicorn with the embedded defaults.

    .venv/bin/python -m bench.load                               # 60 s at 8 searches/s + 1 upload/s
    .venv/bin/python -m bench.load --duration 30 --search-rate 4

What it does:
  * a scratch embedded environment under var/bench/ (VAR_DIR: SQLite, media, models, Qdrant Edge), the
    bootstrap model (the settings' BOOTSTRAP_BACKBONE and BOOTSTRAP_IMAGE_SIZE, ImageNet weights or
    ``--weights``) and the Grocery Store catalog (81 products, each its catalog image + 4 train photos) imported
    with the project's own commands, and an API token for uploads;
  * gunicorn with ``platform/gunicorn.embedded.conf.py`` (one process, threads, eager tasks: an upload
    embeds and upserts inside its own request, after commit) on 127.0.0.1;
  * an open-loop load generator: requests start on a fixed schedule whatever earlier ones are doing
    (latency counts from the scheduled start, so a backed-up server shows as latency, not as a lower
    offered rate); searches POST a test-split photo to /api/v1/search/, uploads POST a val-split photo
    (never in the catalog, so each is new) to /api/v1/products/<id>/images/ with the token. Bounded:
    it stops after ``--duration`` s and each request has a timeout;
  * CPU sampled each second from /proc: the machine, the gunicorn worker (split by thread name, so the
    model's threads show apart from the Python request threads) and this load generator;
  * after the run: every upload answered 201 must end up as an indexed ProductImage row (the in-process
    sweeper gets time to repair); anything else is a lost upload.

Writes var/bench/load.json and prints a table.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, missing_inputs, weights_value
from bench.procfs import stat_fields

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _manage(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def _multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(
    port: int, path: str, body: bytes, ctype: str, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    # A fresh connection per request: each simulated client is independent, as browsers behind a
    # proxy would be; the handshake on loopback costs well under a millisecond.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": ctype, **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _proc_cpu_s(pid: int) -> float:
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _threads_cpu_s(pid: int) -> dict[str, float]:
    by_name: dict[str, float] = defaultdict(float)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended between listing and reading
        # Numbered pools (tf_inter_op_0, ...) are one group.
        by_name[name.rstrip("0123456789_-") or name] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return by_name


def _machine_busy() -> tuple[float, float]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def _gunicorn_worker(master: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                return int(stat.parent.name)
        time.sleep(0.5)
    raise SystemExit("gunicorn started no worker")


def _await_ready(port: int, server: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until /readyz answers 200: post_worker_init loads the model before the worker accepts requests."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"gunicorn not ready; see {log}")
        time.sleep(0.5)


class CpuSampler(threading.Thread):
    """Once a second: machine busy %, gunicorn worker CPU % (of one core), this process's CPU %."""

    def __init__(self, worker_pid: int) -> None:
        super().__init__(daemon=True)
        self.worker_pid = worker_pid
        self.stop = threading.Event()
        self.samples: list[dict[str, float]] = []
        self.threads_start: dict[str, float] = {}
        self.threads_end: dict[str, float] = {}

    def run(self) -> None:
        self.threads_start = _threads_cpu_s(self.worker_pid)
        busy0, total0 = _machine_busy()
        w0, me0, t0 = _proc_cpu_s(self.worker_pid), _proc_cpu_s(os.getpid()), time.monotonic()
        while not self.stop.wait(1.0):
            busy1, total1 = _machine_busy()
            w1, me1, t1 = _proc_cpu_s(self.worker_pid), _proc_cpu_s(os.getpid()), time.monotonic()
            dt = t1 - t0
            self.samples.append(
                {
                    "machine_busy_pct": 100 * (busy1 - busy0) / max(1, total1 - total0),
                    "gunicorn_pct": 100 * (w1 - w0) / dt,
                    "loadgen_pct": 100 * (me1 - me0) / dt,
                }
            )
            busy0, total0, w0, me0, t0 = busy1, total1, w1, me1, t1
        self.threads_end = _threads_cpu_s(self.worker_pid)


def _setup(
    workdir: Path, data: Path, weights: str, photos_per_product: int = 4
) -> tuple[dict[str, str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "QDRANT_", "TF_SERVING"))}
    env.pop("DATABASE_URL", None)
    for var in ("MEDIA_ROOT", "MODELS_DIR", "VECTOR_STORE_PATH"):
        env.pop(var, None)  # all under VAR_DIR
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        VAR_DIR=str(workdir),
        BACKBONE_WEIGHTS=weights_value(weights),
        # The throttles (60/min anonymous) would answer 429 within seconds at 8 searches/s.
        SEARCH_THROTTLE_ANON="1000000/min",
        SEARCH_THROTTLE_USER="1000000/min",
        LOG_LEVEL="WARNING",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(REPO),
    )
    (workdir / "static").mkdir(parents=True, exist_ok=True)
    _manage(env, "migrate", "--verbosity", "0")
    _manage(env, "bootstrap_model", "--weights", weights_value(weights))
    manifest = workdir / "manifest.jsonl"
    _manage(
        env,
        "make_grocery_manifest",
        str(data.resolve()),
        "--photos-per-product",
        str(photos_per_product),
        "--out",
        str(manifest),
    )
    images_root = str((data / "dataset").resolve())
    _manage(env, "import_catalog", str(manifest), "--images-root", images_root, "--quiet-errors", timeout=900)
    token = (
        _manage(
            env,
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
            # Writing the catalog takes catalog.add_product (apikeys' scope rules), not staff alone.
            "u, _ = get_user_model().objects.get_or_create(username='bench', "
            "defaults={'is_staff': True, 'is_superuser': True}); "
            "print(Token.objects.get_or_create(user=u)[0].key)",
        )
        .strip()
        .splitlines()[-1]
    )
    return env, token


def _db_rows(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def _start_gunicorn(
    env: dict[str, str],
    workdir: Path,
    port: int,
    threads: int,
    config: str = "platform/gunicorn.embedded.conf.py",
) -> tuple[subprocess.Popen, int]:
    """gunicorn with the embedded config (or one built on it) on loopback, ready to answer; (its master,
    its one worker's pid)."""
    genv = dict(env, BIND=f"127.0.0.1:{port}", THREADS=str(threads))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", config, "config.wsgi"],
        env=genv,
        cwd=REPO,
        stdout=(workdir / "gunicorn.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        worker_pid = _gunicorn_worker(server.pid)
        _await_ready(port, server, workdir / "gunicorn.log", timeout=180)
    except BaseException:
        _stop_gunicorn(server)
        raise
    return server, worker_pid


def _stop_gunicorn(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def _schedule(
    n_search: int, search_rate: float, n_upload: int, upload_rate: float
) -> list[tuple[float, str, int]]:
    """Evenly spaced searches and uploads, merged: (offset in s, kind, sequence number)."""
    schedule = [(i / search_rate, "search", i) for i in range(n_search)]
    schedule += [(0.5 / upload_rate + i / upload_rate, "upload", i) for i in range(n_upload)]
    return sorted(schedule)


def _send_open_loop(
    schedule: list[tuple[float, str, int]], fire: Callable[[float, float, str, int], None]
) -> float:
    """Call ``fire(offset, due, kind, i)`` at each scheduled moment, whatever the answers' pace; the wall time."""
    # Enough client threads that the generator never delays a request: at most about
    # rate x worst latency requests are in flight.
    pool = ThreadPoolExecutor(max_workers=64)
    begin = time.perf_counter()
    for offset, kind, i in schedule:
        delay = begin + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        pool.submit(fire, offset, begin + offset, kind, i)
    pool.shutdown(wait=True)
    return time.perf_counter() - begin


def _await_indexed(db: Path, image_ids: set[str], drain_s: float) -> tuple[dict[str, str], list[str], float]:
    """Wait (up to ``drain_s``) until every image id (hex) is indexed; (status by id, those not indexed,
    seconds waited). The in-process sweeper gets its time to repair."""
    started = time.monotonic()
    while True:
        rows = _db_rows(db, "SELECT id, index_status FROM catalog_productimage")
        status_of = {uuid.UUID(str(r[0])).hex: r[1] for r in rows}
        not_indexed = [i for i in image_ids if status_of.get(i) != "indexed"]
        if not not_indexed or time.monotonic() - started > drain_s:
            return status_of, not_indexed, time.monotonic() - started
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Grocery Store checkout")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="'imagenet' or a weights file")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--search-rate", type=float, default=8.0, help="searches per second")
    parser.add_argument("--upload-rate", type=float, default=1.0, help="uploads per second")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads (THREADS)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    parser.add_argument("--drain", type=float, default=150.0, help="max wait for uploads to index, s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("var/bench/load.json"))
    args = parser.parse_args(argv)

    skip = missing_inputs(args.data, args.weights, "test")
    if skip:
        print(skip)
        return 0
    os.chdir(REPO)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    queries = sorted((args.data / "dataset" / "test").rglob("*.jpg"))
    uploads = sorted((args.data / "dataset" / "val").rglob("*.jpg"))
    rng.shuffle(queries)
    rng.shuffle(uploads)
    n_search = int(args.duration * args.search_rate)
    n_upload = int(args.duration * args.upload_rate)
    if len(uploads) < n_upload:
        raise SystemExit(f"only {len(uploads)} val photos for {n_upload} uploads; lower --upload-rate")
    query_bytes = [p.read_bytes() for p in queries[: min(len(queries), 400)]]
    upload_files = [(p.name, p.read_bytes()) for p in uploads[:n_upload]]

    report: dict[str, Any] = {
        "benchmark": "load (gunicorn embedded: 1 process, threads, eager tasks)",
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "duration_s": args.duration,
        "offered": {"search_per_s": args.search_rate, "upload_per_s": args.upload_rate},
        "gunicorn_threads": args.threads,
    }
    with tempfile.TemporaryDirectory(prefix="bench-load-", dir=args.out.parent) as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        env, token = _setup(workdir, args.data, args.weights)
        db = workdir / "db.sqlite3"
        report["setup_s"] = round(time.perf_counter() - t0, 1)
        products = [r[0] for r in _db_rows(db, "SELECT id FROM catalog_product")]
        report["catalog"] = {
            "products": len(products),
            "images": _db_rows(db, "SELECT count(*) FROM catalog_productimage")[0][0],
        }
        print(f"catalog: {report['catalog']} (setup {report['setup_s']} s)", flush=True)

        results: list[dict[str, Any]] = []
        server, worker_pid = _start_gunicorn(env, workdir, args.port, args.threads)
        try:
            for i in range(5):  # warm-up searches (graph tracing, page cache), not counted
                body, ctype = _multipart("image", "q.jpg", query_bytes[-1 - i])
                _request(args.port, "/api/v1/search/", body, ctype, {}, args.timeout)

            schedule = _schedule(n_search, args.search_rate, n_upload, args.upload_rate)
            lock = threading.Lock()
            auth = {"Authorization": f"Token {token}"}

            def fire(_offset: float, start_at: float, kind: str, i: int) -> None:
                sent = time.perf_counter()
                if kind == "search":
                    body, ctype = _multipart("image", "q.jpg", query_bytes[i % len(query_bytes)])
                    path, headers = "/api/v1/search/", {}
                else:
                    name, data = upload_files[i]
                    body, ctype = _multipart("image", name, data)
                    path, headers = f"/api/v1/products/{products[i % len(products)]}/images/", auth
                try:
                    status, payload = _request(args.port, path, body, ctype, headers, args.timeout)
                    error = None
                except OSError as exc:  # timeouts and refused connections count as errors
                    status, payload, error = 0, b"", f"{type(exc).__name__}: {exc}"
                done = time.perf_counter()
                row = {
                    "kind": kind,
                    "status": status,
                    "latency_s": done - start_at,  # from the schedule: includes any client-side wait
                    "service_s": done - sent,
                    "error": error,
                }
                if kind == "upload" and status == 201:
                    row["image_id"] = json.loads(payload)["id"]
                with lock:
                    results.append(row)

            sampler = CpuSampler(worker_pid)
            sampler.start()
            wall = _send_open_loop(schedule, fire)
            sampler.stop.set()
            sampler.join()

            # Lost uploads: every 201 must end up indexed; give the in-process sweeper time to repair.
            created = [r["image_id"] for r in results if r.get("image_id")]
            wanted = {uuid.UUID(i).hex for i in created}
            status_of, not_indexed, waited = _await_indexed(db, wanted, args.drain)
            report["uploads_check"] = {
                "created_201": len(created),
                "indexed": len(created) - len(not_indexed),
                "missing_rows": sum(1 for i in wanted if i not in status_of),
                "not_indexed": len(not_indexed),
                "waited_s": round(waited, 1),
            }
        finally:
            _stop_gunicorn(server)
            # A 5xx is the server's to explain: keep its traceback before the folder goes.
            if any(isinstance(r["status"], int) and r["status"] >= 500 for r in results):
                errors = (workdir / "gunicorn.log").read_text(errors="replace").splitlines()
                report["server_errors_tail"] = errors[-80:]
                print("\n".join(errors[-80:]), flush=True)

    per_kind: dict[str, Any] = {}
    for kind in ("search", "upload"):
        rows = [r for r in results if r["kind"] == kind]
        ok = [r for r in rows if r["status"] in (200, 201)]
        lat = [1000 * r["latency_s"] for r in ok]
        per_kind[kind] = {
            "sent": len(rows),
            "ok": len(ok),
            "errors": len(rows) - len(ok),
            "error_statuses": sorted(
                {str(r["status"]) + (f" {r['error']}" if r["error"] else "") for r in rows if r not in ok}
            ),
            "throughput_per_s": round(len(ok) / wall, 2),
            "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "p99_ms": round(_percentile(lat, 0.99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None,
        }
    samples = sampler.samples
    cpu_threads = {
        name: round(sampler.threads_end.get(name, 0) - sampler.threads_start.get(name, 0), 1)
        for name in sampler.threads_end
    }
    report.update(
        wall_s=round(wall, 1),
        requests=per_kind,
        cpu={
            "machine_busy_pct_p50": round(statistics.median(s["machine_busy_pct"] for s in samples), 1),
            "gunicorn_pct_of_one_core_p50": round(statistics.median(s["gunicorn_pct"] for s in samples), 1),
            "gunicorn_pct_of_one_core_max": round(max(s["gunicorn_pct"] for s in samples), 1),
            "loadgen_pct_of_one_core_p50": round(statistics.median(s["loadgen_pct"] for s in samples), 1),
            # CPU seconds by thread name in the gunicorn worker over the run: the model's pool threads
            # versus the request threads (which take turns on the GIL).
            "gunicorn_cpu_s_by_thread": dict(sorted(cpu_threads.items(), key=lambda kv: -kv[1])[:8]),
        },
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
    )
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print("| kind | offered /s | done /s | p50 ms | p99 ms | max ms | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, rate in (("search", args.search_rate), ("upload", args.upload_rate)):
        k = per_kind[kind]
        print(
            f"| {kind} | {rate} | {k['throughput_per_s']} | {k['p50_ms']} | {k['p99_ms']} | {k['max_ms']} | "
            f"{k['errors']} {k['error_statuses'] or ''} |"
        )
    u, c = report["uploads_check"], report["cpu"]
    print(
        f"\nuploads: {u['created_201']} answered 201, {u['indexed']} indexed, {u['not_indexed']} not "
        f"(lost), waited {u['waited_s']} s\nCPU: machine busy p50 {c['machine_busy_pct_p50']}% of "
        f"{os.cpu_count()} cores; gunicorn p50 {c['gunicorn_pct_of_one_core_p50']}% of one core (max "
        f"{c['gunicorn_pct_of_one_core_max']}%); load generator {c['loadgen_pct_of_one_core_p50']}%\n"
        f"gunicorn CPU s by thread: {c['gunicorn_cpu_s_by_thread']}\n{report['machine']}, "
        f"load at end {report['load_average_at_end']}; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
