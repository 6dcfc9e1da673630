"""Chaos: SIGKILL the Celery worker many times, restart Redis and PostgreSQL, while uploads keep coming.

    .venv/bin/python -m bench.chaos                          # 1,000 kills, 3 Redis and 3 PostgreSQL restarts
    .venv/bin/python -m bench.chaos --kills 20 --out var/bench/chaos.json

Everything it breaks is its own, never the machine's shared services: a private PostgreSQL cluster
(``initdb`` into a scratch folder under var/bench/, ``pg_ctl`` on a free loopback port; binaries found
under /usr/lib/postgresql/*/bin or PG_BIN), a private ``redis-server`` (no persistence, so a restart
loses every queued message, the harder case), a real ``celery worker`` (solo pool) and gunicorn with
``platform/gunicorn.conf.py`` on 127.0.0.1, both configured as in production apart from the store.

The vector store: with no ``--qdrant-url`` it is the embedded Qdrant Edge folder, which has ONE owner
process (docs/ARCHITECTURE.md); as in tests/reliability the worker owns it, so the web process cannot
search while a worker runs. Searches then run in a verification phase once the last worker has
stopped (every uploaded image searched for, through the API). With ``--qdrant-url`` (an empty Qdrant
server) web and worker share it and searches run throughout the chaos as well.

Each round starts the worker, lets it boot and index, and SIGKILLs it at a random point: early (a task
in hand while the model loads) or 0-300 ms after a batch has started landing (mid-batch). Uploads go
through the API (``POST /api/v1/products/<id>/images/`` with a token) on their own thread the whole
time. The bench acts as beat and sends ``lookalike.sweep_index`` every few seconds, since queued
messages die with each Redis restart and tasks in hand die with each kill. After the last kill one
worker runs until nothing is pending (the time to heal), is stopped, and the bench checks:

  * every upload answered 201 has exactly one row, indexed, and no row is FAILED;
  * the store holds exactly one point per row: none missing, none orphaned, no id twice, each point's
    product_id the row's;
  * no search answered 5xx (and each image's own product is among its results).

Prints a summary (kills, restarts, uploads, searches, errors by kind, time to heal) and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import io
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_WEIGHTS, REPO, embedded_settings, weights_value
from bench.load import _manage, _multipart

QUEUES = ("index", "reindex", "default", "sync")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, interval: float = 0.1) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise SystemExit(f"chaos: {what} not within {timeout} s")


def _http(port: int, method: str, path: str, body: bytes | None = None, headers=None, timeout=30.0):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Redis:
    """A redis-server of the bench's own; kill() is a SIGKILL, start() brings it back empty."""

    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log, self.proc = port, log, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        _wait(up, 20, "redis-server")

    def unacked(self) -> int:
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=1).hlen("unacked")
        except redis.ConnectionError:
            return 0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class Postgres:
    """A PostgreSQL cluster of the bench's own. A restart is ``pg_ctl restart -m immediate``: the
    server dies without a checkpoint and recovers from its WAL, as after a crash."""

    def __init__(self, root: Path, port: int) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        bindir = os.environ.get("PG_BIN") or (str(Path(found[-1]).parent) if found else "")
        if not bindir:
            raise SystemExit("chaos: no PostgreSQL binaries (set PG_BIN to the folder holding pg_ctl)")
        self.bin, self.root, self.port = Path(bindir), root, port
        self.data, self.log = root / "data", root / "postgres.log"
        # initdb and the server refuse to run as root: run them as the postgres account then.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"chaos: {' '.join(args[:2])} failed: {done.stderr[-1500:]}")

    def init(self) -> None:
        self.root.mkdir(parents=True)
        if self.prefix:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def _ctl(self, *args: str) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", *args
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("restart", "-m", "immediate")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def query(self, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(sql).fetchall()


class Worker:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.proc = env, log, None

    def start(self) -> int:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", ",".join(QUEUES)]
            + ["--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            env=self.env,
            cwd=REPO,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return offset

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.kill()

    def ready_since(self, offset: int) -> bool:
        return "ready." in self.log.read_text(errors="replace")[offset:]


def _image(k: int) -> bytes:
    """A distinct picture per k: colour and a block pattern from k (the catalog deduplicates bytes)."""
    from PIL import Image, ImageDraw

    rng = random.Random(k)
    img = Image.new("RGB", (96, 96), ((13 * k) % 256, (91 * k + 40) % 256, (37 * k + 90) % 256))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rng.randrange(80), rng.randrange(80)
        draw.rectangle(
            [x, y, x + rng.randrange(8, 40), y + rng.randrange(8, 40)],
            fill=tuple(rng.randrange(256) for _ in range(3)),
        )
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


class Traffic(threading.Thread):
    """Uploads (and, with a shared store, searches) through the API until stopped."""

    def __init__(self, port: int, token: str, products: list[int], upload_every: float, search: bool) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.products = port, token, products
        self.upload_every, self.search = upload_every, search
        self.stop = threading.Event()
        self.created: dict[str, tuple[int, int]] = {}  # image id -> (product id, upload number), per 201
        self.statuses: Counter[str] = Counter()
        self.k = 0

    def upload(self) -> None:
        k, product = self.k, self.products[self.k % len(self.products)]
        body, ctype = _multipart("image", f"c{k}.png", _image(k))
        headers = {"Content-Type": ctype, "Authorization": f"Token {self.token}"}
        try:
            status, payload = _http(self.port, "POST", f"/api/v1/products/{product}/images/", body, headers)
        except OSError as exc:
            self.statuses[f"upload {type(exc).__name__}"] += 1
            return  # not accepted: the client would retry; nothing to check for it
        finally:
            self.k += 1
        self.statuses[_label("upload", status, payload)] += 1
        if status == 201:
            self.created[json.loads(payload)["id"]] = (product, k)

    def run(self) -> None:
        while not self.stop.is_set():
            self.upload()
            if self.search:
                status, payload = _search(self.port, _image(random.randrange(max(1, self.k))))
                self.statuses[_label("search", status, payload)] += 1
            self.stop.wait(self.upload_every)


def _label(kind: str, status: int, payload: bytes) -> str:
    """``search 200``, ``upload 503 database_unavailable``: an error answer by its API code."""
    if status < 400:
        return f"{kind} {status}"
    try:
        return f"{kind} {status} {json.loads(payload)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return f"{kind} {status} (no error code)"


class Searcher(threading.Thread):
    """Searches back to back (each a picture that was uploaded) until stopped; statuses in order."""

    def __init__(self, port: int, pictures: list[int]) -> None:
        super().__init__(daemon=True)
        self.port, self.pictures = port, pictures
        self.stop = threading.Event()
        self.answers: list[tuple[float, str]] = []

    def run(self) -> None:
        rng = random.Random(1)
        while not self.stop.is_set():
            status, payload = _search(self.port, _image(rng.choice(self.pictures)))
            self.answers.append((time.monotonic(), _label("search", status, payload)))
            self.stop.wait(0.1)


def _search(port: int, data: bytes) -> tuple[int, bytes]:
    body, ctype = _multipart("image", "q.png", data)
    try:
        return _http(port, "POST", "/api/v1/search/", body, {"Content-Type": ctype})
    except OSError as exc:
        return 0, type(exc).__name__.encode()


def _send_sweep(broker_url: str) -> None:
    """What beat does every minute, every few seconds: re-enqueue whatever is pending past its backoff."""
    from celery import Celery

    try:
        with Celery(broker=broker_url) as app:
            app.send_task("lookalike.sweep_index", queue="default", routing_key="default")
    except Exception:  # noqa: BLE001 - Redis is down during its restart; the next sweep goes through
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--redis-restarts", type=int, default=3)
    parser.add_argument("--postgres-restarts", type=int, default=3)
    parser.add_argument("--upload-every", type=float, default=0.5, help="seconds between uploads")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="'imagenet' or a weights file")
    parser.add_argument("--qdrant-url", default=None, help="an empty Qdrant server shared by web and worker")
    parser.add_argument("--heal-timeout", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, cluster)")
    parser.add_argument("--out", type=Path, default=Path("var/bench/chaos.json"))
    args = parser.parse_args(argv)
    os.chdir(REPO)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="bench-chaos-", dir=args.out.parent)).resolve()
    os.chmod(workdir, 0o755)
    pg, redis_server = Postgres(workdir / "pg", _free_port()), Redis(_free_port(), workdir / "redis.log")
    web = worker = traffic = None
    report: dict[str, Any] = {
        "benchmark": "chaos (PostgreSQL, Redis, celery worker, gunicorn; all private, on loopback)",
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "store": "qdrant server" if args.qdrant_url else "qdrant edge, owned by the worker",
    }
    try:
        t0 = time.perf_counter()
        pg.init()
        pg.start()
        redis_server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "QDRANT_", "TF_SERVING"))}
        env.update(embedded_settings(workdir))
        env.update(
            DATABASE_URL=pg.url,
            BACKBONE_WEIGHTS=weights_value(args.weights),
            INDEX_PENDING_GRACE_S="1",  # the sweeper's backoff: 1 s, 2 s, 4 s... heals in seconds
            TF_CPP_MIN_LOG_LEVEL="2",
            PYTHONPATH=str(REPO),
        )
        if args.qdrant_url:
            env["QDRANT_URL"] = args.qdrant_url
        (workdir / "static").mkdir(exist_ok=True)
        # Set-up runs without a broker (eager, this process's own store), before anyone owns the store.
        _manage(env, "migrate", "--verbosity", "0")
        _manage(env, "bootstrap_model", "--weights", weights_value(args.weights))
        out = _manage(
            env,
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
            "from catalog import services; "
            "u, _ = get_user_model().objects.get_or_create(username='chaos', "
            "defaults={'is_staff': True, 'is_superuser': True}); "
            "ids = [services.product_create(sku=f'C{i}', title=f'Chaos {i}', price='5').pk for i in range(8)]; "
            "print(Token.objects.get_or_create(user=u)[0].key, *ids)",
        )
        token, *product_ids = out.strip().splitlines()[-1].split()
        products = [int(p) for p in product_ids]
        report["setup_s"] = round(time.perf_counter() - t0, 1)

        run_env = dict(env, CELERY_BROKER_URL=redis_server.url)
        port = _free_port()
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "platform/gunicorn.conf.py", "-b", f"127.0.0.1:{port}"]
            + ["--workers", "1", "config.wsgi"],
            env=run_env,
            cwd=REPO,
            stdout=(workdir / "gunicorn.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def web_up() -> bool:
            try:
                return _http(port, "GET", "/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        _wait(web_up, 120, "gunicorn")
        worker = Worker(run_env, workdir / "worker.log")
        traffic = Traffic(port, token, products, args.upload_every, search=bool(args.qdrant_url))
        traffic.start()
        print(f"set up in {report['setup_s']} s; {args.kills} kills begin", flush=True)

        # Restarts spread evenly over the kills, between a kill and the next start.
        def spread(n: int) -> set[int]:
            return {round((i + 1) * args.kills / (n + 1)) for i in range(n)} if n else set()

        # PostgreSQL's a few kills before Redis's, so the two outages do not coincide.
        shift = max(1, args.kills // (2 * (args.postgres_restarts + 1)))
        redis_at = spread(args.redis_restarts)
        pg_at = {max(0, n - shift) for n in spread(args.postgres_restarts)}
        kills = Counter()
        restarts: list[dict[str, Any]] = []
        ready_s: list[float] = []
        exits: list[dict[str, Any]] = []
        last_sweep = 0.0
        begin = time.perf_counter()
        for n in range(args.kills):
            unacked_before = redis_server.unacked()
            offset = worker.start()
            ready_s.append(
                _wait(lambda o=offset: worker.ready_since(o) or not worker.alive(), 300, "worker ready", 0.05)
            )
            if not worker.alive():
                raise SystemExit(f"chaos: the worker died on its own:\n{worker.log.read_text()[-3000:]}")
            if time.monotonic() - last_sweep > 3:
                _send_sweep(redis_server.url)
                last_sweep = time.monotonic()
            # Restarts while the worker runs: it must reconnect to both (a task in hand meets the
            # database going away; the broker connection drops under it).
            if n in redis_at:
                redis_server.kill()
                time.sleep(rng.uniform(0.5, 2.0))  # uploads meanwhile: saved, their enqueue fails
                redis_server.start()
                restarts.append({"round": n + 1, "what": "redis"})
            if n in pg_at:
                t = time.monotonic()
                pg.restart()
                restarts.append({"round": n + 1, "what": "postgres", "s": round(time.monotonic() - t, 2)})
            if n in redis_at or n in pg_at:
                time.sleep(rng.uniform(0.5, 3.0))  # the worker meets the restarted service
            if not worker.alive():
                # Not a kill of ours: count it and look at why, and go on (the next round starts one).
                kills["worker_exited_on_its_own"] += 1
                exits.append({"round": n + 1, "log_tail": worker.log.read_text(errors="replace")[-2000:]})
                continue
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.0, 1.0))  # a task in hand, or the first batch just begun
                kills["early"] += 1
            else:
                before = pg.query("SELECT count(*) FROM catalog_productimage WHERE index_status = 'indexed'")[
                    0
                ][0]
                try:
                    _wait(
                        lambda b=before: (
                            pg.query(
                                "SELECT count(*) FROM catalog_productimage WHERE index_status = 'indexed'"
                            )[0][0]
                            > b
                        ),
                        10,
                        "progress",
                        0.02,
                    )
                    time.sleep(rng.uniform(0.0, 0.3))
                    kills["mid_batch"] += 1
                except SystemExit:
                    kills["idle"] += 1  # nothing pending to index: the kill lands between tasks
            if not worker.alive():
                kills["worker_exited_on_its_own"] += 1
                exits.append({"round": n + 1, "log_tail": worker.log.read_text(errors="replace")[-2000:]})
                continue
            # A delivered task not yet acked: its message is stranded in "unacked" (an hour's
            # visibility timeout), so only the sweeper brings its images in.
            kills["with_task_in_hand"] += redis_server.unacked() > unacked_before
            worker.kill()
            kills["total"] += 1
            if (n + 1) % 10 == 0:
                print(
                    f"  {n + 1} kills, {len(traffic.created)} uploads accepted, {dict(traffic.statuses)}",
                    flush=True,
                )
        report["chaos_s"] = round(time.perf_counter() - begin, 1)
        traffic.stop.set()
        traffic.join(timeout=60)

        # Heal: one worker, sweeps as beat would send them, until no row is left unindexed.
        pending_at_end = pg.query(
            "SELECT count(*) FROM catalog_productimage WHERE index_status <> 'indexed'"
        )[0][0]

        def healed() -> bool:
            if time.monotonic() - healed.last > 3:
                _send_sweep(redis_server.url)
                healed.last = time.monotonic()
            return (
                pg.query("SELECT count(*) FROM catalog_productimage WHERE index_status <> 'indexed'")[0][0]
                == 0
            )

        healed.last = 0.0
        worker.start()
        heal_s = _wait(healed, args.heal_timeout, "healing (every image indexed)", 0.5)
        worker.stop()

        # Searches through a PostgreSQL restart: with the embedded store gunicorn opens the folder
        # on its first search, now that the worker has handed it over. While the server is away a
        # search may answer 503 with its code (the client retries); a 500 is a bug.
        sample = list(traffic.created.values())
        searcher = Searcher(port, [k for _, k in sample])
        searcher.start()
        time.sleep(3)
        t = time.monotonic()
        pg.restart()
        restarts.append({"during": "searches", "what": "postgres", "s": round(time.monotonic() - t, 2)})
        _wait(
            lambda: any(at > t and a == "search 200" for at, a in searcher.answers[-5:]),
            120,
            "searches again",
        )
        time.sleep(2)
        searcher.stop.set()
        searcher.join(timeout=60)
        failed_at = [at for at, a in searcher.answers if at > t and a != "search 200"]
        outage = Counter(a for _, a in searcher.answers)
        searches_healed_s = (max(failed_at) - t) if failed_at else 0.0

        # Then each accepted upload (up to 200 of them) searched for: 200, its own product found.
        verify: Counter[str] = Counter()
        found = 0
        for product, k in sample[:: max(1, len(sample) // 200)]:
            status, payload = _search(port, _image(k))
            verify[_label("search", status, payload)] += 1
            if status == 200:
                found += product in {r["product"]["id"] for r in json.loads(payload)["results"]}

        # The web process now owns the embedded store: it hands it over by stopping.
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=60)
        rows = pg.query("SELECT id::text, index_status, product_id FROM catalog_productimage")
        # The active model's collection: each model version has its own (no alias on Qdrant Edge).
        collection = pg.query("SELECT collection FROM search_modelversion WHERE status = 'active'")[0][0]
        report["check"] = _check(rows, traffic.created, workdir, args.qdrant_url, collection)
        report.update(
            kills=dict(kills),
            worker_exits=exits,
            restarts=restarts,
            uploads={"attempted": traffic.k, "accepted_201": len(traffic.created)},
            statuses_during_chaos=dict(sorted(traffic.statuses.items())),
            searches_through_postgres_restart=dict(sorted(outage.items())),
            searches_answer_again_after_s=round(searches_healed_s, 1),
            verification_searches=dict(verify),
            verification_own_product_found=found,
            server_errors_500=sum(
                v for c in (traffic.statuses, outage, verify) for k, v in c.items() if " 500" in k
            ),
            search_5xx_outside_outages=sum(v for k, v in verify.items() if not k.endswith(" 200")),
            # Searches retry through a short restart (SEARCH_DATABASE_RETRY_S): none may answer 5xx.
            search_5xx_through_restart=sum(v for k, v in outage.items() if k.startswith("search 5")),
            pending_after_last_kill=pending_at_end,
            time_to_heal_s=round(heal_s, 1),
            worker_ready_s={
                "min": round(min(ready_s), 1),
                "median": round(sorted(ready_s)[len(ready_s) // 2], 1),
                "max": round(max(ready_s), 1),
            },
        )
    finally:
        if traffic is not None:
            traffic.stop.set()
        if worker is not None:
            worker.kill()
        if web is not None and web.poll() is None:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=60)
        redis_server.kill()
        with contextlib.suppress(SystemExit):  # already down: nothing to stop
            pg.stop()
        if not args.keep and "check" in report:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            report["scratch"] = str(workdir)

    args.out.write_text(json.dumps(report, indent=2) + "\n")
    c = report["check"]
    ok = (
        not c["problems"]
        and report["server_errors_500"] == 0
        and report["search_5xx_outside_outages"] == 0
        and report["search_5xx_through_restart"] == 0
        and report["verification_own_product_found"] == sum(report["verification_searches"].values())
    )
    print(
        f"\nkills {report['kills']}; restarts {[r['what'] for r in report['restarts']]}\n"
        f"uploads {report['uploads']}; {c['rows']} rows, {c['points']} points\n"
        f"during the kills: {report['statuses_during_chaos']}\n"
        f"searches through a PostgreSQL restart: {report['searches_through_postgres_restart']}, all 200 "
        f"again {report['searches_answer_again_after_s']} s after it began\n"
        f"verification searches: {report['verification_searches']}, own product found in "
        f"{report['verification_own_product_found']}; 500s anywhere: {report['server_errors_500']}\n"
        f"{report['pending_after_last_kill']} pending after the last kill, healed in {report['time_to_heal_s']} s "
        f"without a hand; problems: {c['problems'] or 'none'}\nwrote {args.out}\n"
        + ("targets met" if ok else "targets NOT met")
    )
    return 0 if ok else 1


def _check(
    rows: list[tuple],
    created: dict[str, tuple[int, int]],
    workdir: Path,
    qdrant_url: str | None,
    collection_name: str,
) -> dict[str, Any]:
    from search.vector_store import open_vector_store

    problems: list[str] = []
    row_of = {str(uuid.UUID(r[0])): r for r in rows}
    ids = [str(uuid.UUID(r[0])) for r in rows]
    lost = [i for i in created if str(uuid.UUID(i)) not in row_of]
    if lost:
        problems.append(f"{len(lost)} uploads answered 201 have no row")
    not_indexed = [i for i, r in row_of.items() if r[1] != "indexed"]
    if not_indexed:
        problems.append(f"{len(not_indexed)} rows not indexed")
    store = (
        open_vector_store(url=qdrant_url) if qdrant_url else open_vector_store(path=str(workdir / "qdrant"))
    )
    try:
        collection = collection_name
        points = list(store.scroll_ids(collection))
    finally:
        store.close()
    point_ids = [p for p, _ in points]
    twice = len(point_ids) - len(set(point_ids))
    if twice:
        problems.append(f"{twice} point ids twice")
    missing = set(ids) - set(point_ids)
    orphans = set(point_ids) - set(ids)
    if missing:
        problems.append(f"{len(missing)} rows without a point")
    if orphans:
        problems.append(f"{len(orphans)} points without a row")
    wrong = sum(1 for p, payload in points if p in row_of and int(payload["product_id"]) != row_of[p][2])
    if wrong:
        problems.append(f"{wrong} points with another product_id than their row")
    return {"rows": len(rows), "points": len(point_ids), "problems": problems}


if __name__ == "__main__":
    raise SystemExit(main())
