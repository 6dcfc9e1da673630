"""Ingest: images per second from upload to searchable, through the real pipeline and the bare loop.

    .venv/bin/python -m bench.ingest                          # 3 rounds of 200 photos, 40 freshness uploads
    .venv/bin/python -m bench.ingest --images 100 --rounds 2 --fresh 20

What it measures, in one run, interleaved round by round (so load from other processes hits all alike):
  * pipeline: ``catalog.services.product_image_add`` in this process (autocommit, so on-commit fires at
    once) -> ``index_images.delay`` -> Redis -> a real ``celery worker`` subprocess (solo pool) that owns
    a Qdrant Edge store and the model in-process (``embedder_for``: its model.tflite through LiteRT) ->
    embed -> upsert -> the row marked indexed.
    Wall time from the first upload until the last row's ``indexed_at`` (a DB timestamp).
  * bare loop: ``ml.preprocess.preprocess`` + the same embedder's ``embed`` + ``EdgeVectorStore.upsert`` on
    the same photos, no Django or Celery. Twice: in batches of 1 (what a lone upload's task gets) and
    of ``INDEX_CHUNK`` (what bulk imports, the sweeper and a burst of uploads sharing a task get).
  * backlog: the same worker draining a round of uploads committed in one transaction (their tasks
    enqueued together), from the commit to the last ``indexed_at``: the worker's path against the bare
    loop with the uploads' own CPU outside both clocks (on 2 cores the uploading client takes CPU from
    the worker in the pipeline measure; the bare loop uploads nothing).
  * freshness: with the worker warm, one upload every 1/rate s; latency per image = indexed_at -
    created_at (both DB timestamps; created_at is taken just before commit), p50 and p95.

Scratch environment: PostgreSQL database ``lookalike_bench`` (dropped and re-created), Redis DB 14
(the broker) and 13 (``CACHE_URL``, shared by this process and the worker as docker-compose deploys
it, so uploads share a queued task: workers/upload_batching.py), both flushed, media, models and
vector stores under a temp folder in var/bench/; the real bootstrap model (the default:
``BOOTSTRAP_BACKBONE`` at ``BOOTSTRAP_IMAGE_SIZE``, EfficientNet-Lite0 at 348 px with ImageNet weights)
exported there once. The vector store flush interval is
``VECTOR_STORE_FLUSH_INTERVAL_S`` (``--flush-interval``, default the setting's default, 2 s), the same
for the worker and the bare loop. Writes var/bench/ingest.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, missing_inputs, weights_value

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# Worker variants, measured one after the other in the same run (name -> Celery's db_reuse_max). The
# "db_reuse" variant of 2026-11-23 turned out to be the same worker (Celery's Django fixup never read
# the setting it changed) and the worker keeps its connection anyway (DB_CONN_MAX_AGE), so one is left.
WORKER_VARIANTS: dict[str, int | None] = {"default": None}
TASK_LINE = re.compile(r"Task lookalike\.index_images\[[^\]]+\] succeeded in ([0-9.]+)s")


def _percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def _photos(data: Path, count: int) -> list[tuple[str, str, bytes]]:
    """(class, file name, bytes) for the train split, spread over classes so products get a few each."""
    root = data / "dataset" / "train"
    by_class: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.jpg")):
        by_class.setdefault(path.parent.name, []).append(path)
    # Round-robin across classes: every round sees the same mix of products and photo sizes.
    picked: list[tuple[str, str, bytes]] = []
    depth = 0
    while len(picked) < count:
        added = False
        for cls, paths in by_class.items():
            if depth < len(paths) and len(picked) < count:
                picked.append((cls, paths[depth].name, paths[depth].read_bytes()))
                added = True
        if not added:
            raise SystemExit(f"only {len(picked)} train photos under {root}; ask for fewer")
        depth += 1
    return picked


def _scratch_database(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _setup_django(
    workdir: Path, database_url: str, broker_url: str, cache_url: str, flush_s: float, weights: str
) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        VAR_DIR=str(workdir),
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        CACHE_URL=cache_url,
        MEDIA_ROOT=str(workdir / "media"),
        MODELS_DIR=str(workdir / "models"),
        VECTOR_STORE_PATH=str(workdir / "qdrant"),
        VECTOR_STORE_FLUSH_INTERVAL_S=str(flush_s),
        BACKBONE_WEIGHTS=weights_value(weights),
        LOG_LEVEL="WARNING",
        TF_CPP_MIN_LOG_LEVEL="2",
        # Upload to searchable, not reading the text on the pack: the worker consumes every queue, the
        # text queue too, and would read each round's photos (about 0.9 s each) beside the next
        # measurement. Reading has its own queue and its own bench (bench/text.py).
        OCR_ENABLED="0",
    )
    for var in ("QDRANT_URL", "TF_SERVING_TARGET"):
        os.environ.pop(var, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _start_worker(worker: Any, db_reuse_max: int | None) -> None:
    """The tests' worker command line; with ``db_reuse_max`` the same worker with that Celery setting."""
    if db_reuse_max is None:
        worker.start()
        return
    import subprocess

    from tests.support.celery_worker import QUEUES

    code = (
        "from config.celery import app; "
        f"app.conf.update(db_reuse_max={int(db_reuse_max)}); "
        "app.worker_main(['worker', '--pool=solo', '--concurrency=1', "
        f"'-Q', '{','.join(QUEUES)}', '--without-heartbeat', '--without-gossip', '--without-mingle', "
        "'--loglevel=INFO'])"
    )
    worker.proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=worker.env,
        stdout=worker.log_path.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _worker_task_times(log_path: Path, skip: int) -> list[float]:
    lines = log_path.read_text(errors="replace").splitlines()[skip:]
    return [float(m.group(1)) for line in lines if (m := TASK_LINE.search(line))]


def _log_lines(log_path: Path) -> int:
    return len(log_path.read_text(errors="replace").splitlines()) if log_path.exists() else 0


def _wait_indexed(product_ids: list[int], n: int, timeout: float, worker: Any) -> None:
    from catalog.models import IndexStatus, ProductImage

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = ProductImage.objects.filter(product_id__in=product_ids)
        done = rows.filter(index_status=IndexStatus.INDEXED).count()
        if done >= n:
            return
        if rows.filter(index_status=IndexStatus.FAILED).exists():
            raise SystemExit(f"an image failed to index; worker log:\n{worker.log_tail()}")
        if not worker.alive():
            raise SystemExit(f"worker exited; log:\n{worker.log_tail()}")
        time.sleep(0.05)
    raise SystemExit(f"only {done}/{n} indexed after {timeout} s; worker log:\n{worker.log_tail()}")


def _drain(worker: Any) -> float:
    """Seconds until the worker's queues are empty (the tasks a round left behind)."""
    start = time.perf_counter()
    worker.wait_idle()
    return round(time.perf_counter() - start, 2)


def _products_for(photos: list[tuple[str, str, bytes]], tag: str) -> dict[str, Any]:
    from catalog import services

    products = {}
    for i, cls in enumerate(sorted({c for c, _, _ in photos})):
        products[cls] = services.product_create(
            sku=f"{tag}-{i:03d}", title=cls.replace("-", " "), category=f"cat-{i % 20:02d}", price="1.99"
        )
    return products


def _pipeline_round(photos: list[tuple[str, str, bytes]], tag: str, worker: Any) -> dict[str, Any]:
    """Upload as fast as one client thread can, then wait until every row is indexed."""
    from django.db.models import Max, Min

    from catalog import services
    from catalog.models import ProductImage

    products = _products_for(photos, tag)  # outside the clock: catalog editing, not ingest
    skip = _log_lines(worker.log_path)
    t0_wall = time.time()
    t0 = time.perf_counter()
    for cls, name, data in photos:
        # Autocommit: on_commit fires at once, so each upload enqueues its own one-image task.
        services.product_image_add(product=products[cls], data=data, original_name=name)
    upload_s = time.perf_counter() - t0
    pids = [p.pk for p in products.values()]
    _wait_indexed(pids, len(photos), timeout=600, worker=worker)
    stamps = ProductImage.objects.filter(product_id__in=pids).aggregate(
        last=Max("indexed_at"), first_created=Min("created_at")
    )
    wall_s = stamps["last"].timestamp() - t0_wall
    time.sleep(0.3)  # the worker logs a task's line just after its last DB write
    tasks = _worker_task_times(worker.log_path, skip)
    return {
        "images": len(photos),
        "upload_s": round(upload_s, 3),
        "wall_s": round(wall_s, 3),
        "images_per_s": round(len(photos) / wall_s, 2),
        "tasks": len(tasks),
        "task_s_sum": round(sum(tasks), 3),
        "task_ms_p50": round(1000 * statistics.median(tasks), 1) if tasks else None,
        # Busy fraction of the worker: task time over wall time; the rest is Celery's fetch/ack loop
        # and waiting for uploads.
        "worker_busy": round(sum(tasks) / wall_s, 3) if tasks else None,
    }


def _backlog_round(photos: list[tuple[str, str, bytes]], tag: str, worker: Any) -> dict[str, Any]:
    """The worker draining a backlog: every upload committed at once (one transaction, so their tasks
    are enqueued together at commit), timed from just before the commit to the last ``indexed_at``.
    The uploads' own CPU falls outside the clock, as it does for the bare loop."""
    from django.db import transaction
    from django.db.models import Max

    from catalog import services
    from catalog.models import ProductImage

    products = _products_for(photos, tag)
    skip = _log_lines(worker.log_path)
    with transaction.atomic():
        for cls, name, data in photos:
            services.product_image_add(product=products[cls], data=data, original_name=name)
        t0_wall = time.time()  # the commit and the tasks' enqueueing (on commit) are inside the clock
    pids = [p.pk for p in products.values()]
    _wait_indexed(pids, len(photos), timeout=600, worker=worker)
    last = ProductImage.objects.filter(product_id__in=pids).aggregate(last=Max("indexed_at"))["last"]
    wall_s = last.timestamp() - t0_wall
    time.sleep(0.3)
    tasks = _worker_task_times(worker.log_path, skip)
    return {
        "images": len(photos),
        "wall_s": round(wall_s, 3),
        "images_per_s": round(len(photos) / wall_s, 2),
        "tasks": len(tasks),
        "task_s_max": round(max(tasks), 3) if tasks else None,
    }


def _bare_round(
    photos: list[tuple[str, str, bytes]], batch: int, embedder: Any, store: Any, collection: str, size: int
) -> dict[str, Any]:
    from ml.preprocess import preprocess

    steps = {"decode": 0.0, "embed": 0.0, "upsert": 0.0}
    t0 = time.perf_counter()
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        ts = time.perf_counter()
        pixels = np.stack([preprocess(data, size) for _, _, data in chunk])
        te = time.perf_counter()
        vectors = embedder.embed(pixels)
        tu = time.perf_counter()
        store.upsert(
            collection,
            [
                (
                    str(uuid.uuid4()),
                    vec,
                    {"product_id": 1, "sku": "B", "category": "c", "price": 1.99, "in_stock": True},
                )
                for vec in vectors
            ],
        )
        steps["decode"] += te - ts
        steps["embed"] += tu - te
        steps["upsert"] += time.perf_counter() - tu
    took = time.perf_counter() - t0
    return {
        "batch": batch,
        "images": len(photos),
        "wall_s": round(took, 3),
        "images_per_s": round(len(photos) / took, 2),
        "ms_per_image": {k: round(1000 * v / len(photos), 2) for k, v in steps.items()},
    }


def _freshness(photos: list[tuple[str, str, bytes]], rate: float, worker: Any) -> dict[str, Any]:
    """Open-loop: upload i at t0 + i / rate whatever happened before, so a slow worker shows as latency."""
    from catalog import services
    from catalog.models import ProductImage

    products = _products_for(photos, f"FRESH-{worker.log_path.stem}")
    skip = _log_lines(worker.log_path)
    ids, late = [], 0
    t0 = time.perf_counter()
    for i, (cls, name, data) in enumerate(photos):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            late += 1
        ids.append(services.product_image_add(product=products[cls], data=data, original_name=name).image.pk)
    _wait_indexed([p.pk for p in products.values()], len(photos), timeout=300, worker=worker)
    rows = ProductImage.objects.filter(pk__in=ids).values_list("created_at", "indexed_at")
    lat = [(indexed - created).total_seconds() for created, indexed in rows]
    time.sleep(0.3)
    tasks = _worker_task_times(worker.log_path, skip)
    return {
        "uploads": len(photos),
        "rate_per_s": rate,
        "late_uploads": late,
        "p50_s": round(statistics.median(lat), 3),
        "p95_s": round(_percentile(lat, 0.95), 3),
        "max_s": round(max(lat), 3),
        "task_ms_p50": round(1000 * statistics.median(tasks), 1) if tasks else None,
        "task_ms_p95": round(1000 * _percentile(tasks, 0.95), 1) if tasks else None,
    }


def _median_of(rounds: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 2)


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    """Medians over rounds; ratios are taken round by round (pipeline vs the bare loop just before it)."""
    pipe, b1, bc, back = res["pipeline"], res["bare_b1"], res["bare_chunk"], res["backlog"]
    return {
        "pipeline_images_per_s_p50": _median_of(pipe, "images_per_s"),
        "backlog_images_per_s_p50": _median_of(back, "images_per_s"),
        "backlog_over_bare_chunk_p50": round(
            statistics.median(p["images_per_s"] / b["images_per_s"] for p, b in zip(back, bc, strict=True)), 3
        ),
        "bare_b1_images_per_s_p50": _median_of(b1, "images_per_s"),
        "bare_chunk_images_per_s_p50": _median_of(bc, "images_per_s"),
        "pipeline_over_bare_b1_p50": round(
            statistics.median(p["images_per_s"] / b["images_per_s"] for p, b in zip(pipe, b1, strict=True)), 3
        ),
        "pipeline_over_bare_chunk_p50": round(
            statistics.median(p["images_per_s"] / b["images_per_s"] for p, b in zip(pipe, bc, strict=True)), 3
        ),
        "task_ms_p50": _median_of(pipe, "task_ms_p50"),
        "freshness_p50_s": res["freshness"]["p50_s"],
        "freshness_p95_s": res["freshness"]["p95_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Grocery Store checkout")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="'imagenet' or a weights file")
    parser.add_argument("--images", type=int, default=200, help="photos per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", type=int, default=40, help="freshness uploads")
    parser.add_argument("--fresh-rate", type=float, default=2.0, help="freshness uploads per second")
    parser.add_argument(
        "--flush-interval",
        type=float,
        default=float(os.environ.get("VECTOR_STORE_FLUSH_INTERVAL_S", "2.0")),
        help="VECTOR_STORE_FLUSH_INTERVAL_S for the worker and the bare loop (0 = flush each write)",
    )
    parser.add_argument("--db-name", default="lookalike_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--cache-url",
        default="redis://127.0.0.1:6379/13",
        help="CACHE_URL of the uploads and the worker: a Redis cache they share, as deployed",
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench/ingest.json"))
    args = parser.parse_args(argv)

    skip = missing_inputs(args.data, args.weights, "train")
    if skip:
        print(skip)
        return 0
    os.chdir(REPO)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Distinct photos for every variant: a second variant indexing the first one's photos on new
    # products would also pay flag_duplicates' product updates (exact duplicates), skewing the comparison.
    need = (2 * args.images * args.rounds + args.fresh) * len(WORKER_VARIANTS) + 8
    photos = _photos(args.data, need)
    warm, photos = photos[:8], photos[8:]
    fresh = {}
    for variant in WORKER_VARIANTS:  # new bytes for each: the same bytes on a product are a no-op
        fresh[variant], photos = photos[: args.fresh], photos[args.fresh :]
    rounds_photos, backlog_photos = {}, {}
    for variant in WORKER_VARIANTS:
        for into in (rounds_photos, backlog_photos):
            into[variant] = [photos[i * args.images : (i + 1) * args.images] for i in range(args.rounds)]
            photos = photos[args.images * args.rounds :]

    import redis

    for url in (args.redis_url, args.cache_url):
        redis.Redis.from_url(url).flushdb()  # our own DB numbers: leftovers would skew the first round
    database_url = _scratch_database(args.db_name)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "ingest (upload -> searchable)",
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "flush_interval_s": args.flush_interval,
        "images_per_round": args.images,
        "rounds": args.rounds,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    worker = None
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=args.out.parent) as tmp:
        workdir = Path(tmp)
        try:
            _setup_django(
                workdir, database_url, args.redis_url, args.cache_url, args.flush_interval, args.weights
            )
            from django.conf import settings

            from search.embedders import embedder_for, reset_embedders
            from search.services.model_versions import bootstrap_model_ensure
            from search.vector_store import EdgeVectorStore, collection_name, reset_vector_store
            from tests.support.celery_worker import WorkerProcess, worker_env
            from workers.tasks import INDEX_CHUNK

            t0 = time.perf_counter()
            model = bootstrap_model_ensure(weights=weights_value(args.weights)).model
            report["export_s"] = round(time.perf_counter() - t0, 1)
            reset_vector_store()  # the worker owns the store from here on

            env = worker_env(
                database_url=database_url,
                broker_url=args.redis_url,
                media_root=workdir / "media",
                vector_store_path=workdir / "qdrant",
                models_dir=workdir / "models",
                extra={
                    "VECTOR_STORE_FLUSH_INTERVAL_S": str(args.flush_interval),
                    "LOG_LEVEL": "INFO",
                    "CACHE_URL": args.cache_url,
                },
            )
            embedder = embedder_for(model)
            bare_store = EdgeVectorStore(workdir / "bare-qdrant", flush_interval_s=args.flush_interval)
            coll = collection_name("bare")
            bare_store.ensure_collection(coll, model.embedding_dim)
            for batch in (1, INDEX_CHUNK):  # trace each batch shape once, untimed
                _bare_round(warm, batch, embedder, bare_store, coll, model.image_size)
            report["model"] = f"{model.backbone} {model.image_size} px, {model.embedding_dim}-d"
            report["embedder"] = type(embedder).__name__
            report["embed_batch_size"] = settings.EMBED_BATCH_SIZE
            report["index_chunk"] = INDEX_CHUNK
            report["variants"] = {}
            from catalog import services

            for variant, reuse in WORKER_VARIANTS.items():
                worker = WorkerProcess(env, workdir / f"worker-{variant}.log", args.redis_url)
                t0 = time.perf_counter()
                _start_worker(worker, reuse)
                # Warm the worker (model load, graph tracing, store open) before anything is timed.
                products = _products_for(warm, f"WARM-{variant}")
                for cls, name, data in warm:
                    services.product_image_add(product=products[cls], data=data, original_name=name)
                _wait_indexed([p.pk for p in products.values()], len(warm), timeout=300, worker=worker)
                res: dict[str, Any] = {"worker_warm_s": round(time.perf_counter() - t0, 1)}
                res["pipeline"], res["bare_b1"], res["bare_chunk"], res["backlog"] = [], [], [], []
                res["worker_drain_s"], res["backlog_drain_s"] = [], []
                for r, chunk in enumerate(rounds_photos[variant]):
                    # The worker still has tasks after the last image is indexed (one per upload, each
                    # finding its image done); the bare loop waits for them, or it shares the cores.
                    res["worker_drain_s"].append(_drain(worker))
                    res["bare_b1"].append(_bare_round(chunk, 1, embedder, bare_store, coll, model.image_size))
                    res["bare_chunk"].append(
                        _bare_round(chunk, INDEX_CHUNK, embedder, bare_store, coll, model.image_size)
                    )
                    res["pipeline"].append(_pipeline_round(chunk, f"{variant}-R{r}", worker))
                    # Those tasks again: a backlog queued behind them would be taken along by the
                    # first of them, so the worker's idle start is the same for both measures.
                    res["backlog_drain_s"].append(_drain(worker))
                    res["backlog"].append(
                        _backlog_round(backlog_photos[variant][r], f"{variant}-B{r}", worker)
                    )
                    p, b1, bc = res["pipeline"][-1], res["bare_b1"][-1], res["bare_chunk"][-1]
                    print(
                        f"{variant} round {r}: pipeline {p['images_per_s']}/s (task p50 {p['task_ms_p50']} ms, "
                        f"busy {p['worker_busy']}) | backlog {res['backlog'][-1]['images_per_s']}/s | bare b1 "
                        f"{b1['images_per_s']}/s | bare b{INDEX_CHUNK} {bc['images_per_s']}/s",
                        flush=True,
                    )
                res["freshness"] = _freshness(fresh[variant], args.fresh_rate, worker)
                print(f"{variant} freshness: {res['freshness']}", flush=True)
                worker.stop()  # hands the store folder to the next variant's worker
                res["summary"] = _summary(res)
                report["variants"][variant] = res
            bare_store.close()
        finally:
            if worker is not None:
                worker.kill()
            from django.db import connections

            connections.close_all()
            reset_vector_store()
            reset_embedders()
            _drop_database(args.db_name)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    names = list(report["variants"])
    print()
    print(f"| measure (median of {args.rounds} rounds x {args.images} photos) | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    rows = [
        ("pipeline, upload -> indexed (images/s)", "pipeline_images_per_s_p50"),
        ("bare loop, batch 1 (images/s)", "bare_b1_images_per_s_p50"),
        ("bare loop, batch 64 (images/s)", "bare_chunk_images_per_s_p50"),
        ("pipeline / bare batch 1", "pipeline_over_bare_b1_p50"),
        ("pipeline / bare batch 64", "pipeline_over_bare_chunk_p50"),
        ("backlog drained by the worker (images/s)", "backlog_images_per_s_p50"),
        ("backlog / bare batch 64", "backlog_over_bare_chunk_p50"),
        ("worker task p50 (ms)", "task_ms_p50"),
        ("freshness p50 (s)", "freshness_p50_s"),
        ("freshness p95 (s)", "freshness_p95_s"),
    ]
    for label, key in rows:
        print(f"| {label} | " + " | ".join(str(report["variants"][n]["summary"][key]) for n in names) + " |")
    first = report["variants"][names[0]]
    print(
        f"\nVECTOR_STORE_FLUSH_INTERVAL_S={args.flush_interval}; freshness: {args.fresh} uploads at "
        f"{args.fresh_rate}/s; bare ms/image (round 0, batch 1): {first['bare_b1'][0]['ms_per_image']}"
        f"\n{report['model']} via {report['embedder']}"
        f"\n{report['machine']}, load {report['load_average_at_start']} -> {report['load_average_at_end']}; "
        f"wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
