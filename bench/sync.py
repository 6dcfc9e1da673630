"""Catalog sync: a 100,000-item Merchant feed synced from loopback, and image URLs fetched and indexed.

    .venv/bin/python -m bench.sync                                  # 100,000 items; 2 rounds of 300 images
    .venv/bin/python -m bench.sync --items 5000 --images 120 --rounds 1
    .venv/bin/python -m bench.sync --skip-products | --skip-images

What it measures, in one run:
  * products: ``bench.feeds.generate_merchant_feed`` writes the feed (3 image URLs an item, a third of the
    items variants in groups), a stock ``python -m http.server`` child serves it on 127.0.0.1, and a fresh
    child process runs one ``sync_run_execute`` (``--full``, images off) against a scratch PostgreSQL
    database: first the sync that creates the catalog, then an unchanged re-sync. Each child reports
    wall and CPU time and its peak RSS (the whole process: interpreter, Django, the sync). The same feed
    parsed alone (``bench.feeds --parse-only``, another child) shows what the diff adds to the parse.
  * images: ``--images`` generated 640x640 JPEGs a round, served by the same file server. The real path:
    a JSONL feed (3 image URLs a product) synced in this process with tasks in-process (the embedded
    default): ImageFetch rows, ``lookalike.fetch_sync_images`` (fetch threads, the fetcher's guard and
    per-host limit), ``product_image_add``, ``lookalike.index_images`` (decode, embed, upsert, rows
    marked indexed). Against it, a bare loop on the round's other half of the pictures: the same fetch
    threads with ``fetch_image``, then ``preprocess`` + ``embed`` + ``upsert`` per batch of INDEX_CHUNK,
    no database. Rounds alternate the two so that load from other processes hits both alike.

Scratch environment: PostgreSQL database ``lookalike_bench_sync`` (dropped and re-created), media,
models and vector stores under a temporary folder in var/bench/; the real bootstrap model (the
settings' BOOTSTRAP_BACKBONE and size, ImageNet weights), or MobileNetV2 with random weights at 32 px
(``--tiny``). Writes var/bench/sync.json and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.feeds import generate_merchant_feed
from bench.inputs import DEFAULT_WEIGHTS, REPO, weights_value
from bench.procfs import status_mib

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "lookalike_bench_sync"


def _status_mb(field: str) -> float | None:
    try:
        return status_mib("self", field).get(field)
    except OSError:
        return None


def _peak_rss_mb() -> float:
    """This process's peak resident set. VmHWM belongs to the process's own memory map; getrusage's
    ru_maxrss survives exec on Linux, so a child started by a larger parent would report the parent's."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    return _status_mb("VmRSS") or 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scratch_database() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"


def _drop_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def _environment(workdir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "QDRANT_", "TF_SERVING"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        VAR_DIR=str(workdir),
        DATABASE_URL=database_url,
        MEDIA_ROOT=str(workdir / "media"),
        MODELS_DIR=str(workdir / "models"),
        VECTOR_STORE_PATH=str(workdir / "qdrant"),
        # The only server any fetch here reaches: the file server this benchmark starts on loopback.
        IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32",
        IMAGE_FETCH_ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=str(REPO),
    )
    return env


# --- one sync, in a child process ------------------------------------------------------------------


def child_sync(url: str, full: bool, images: bool) -> dict[str, Any]:
    """Run one sync of ``url`` in this process (Django set up from the environment) and report it."""
    import django

    django.setup()
    from catalog.models import SyncOrigin
    from catalog.services.sync import sync_run_create, sync_run_execute

    baseline = _rss_now_mb()
    run = sync_run_create(location=url, origin=SyncOrigin.COMMAND, full=full, images=images)
    started, cpu = time.perf_counter(), time.process_time()
    run = sync_run_execute(run)
    return {
        "state": run.state,
        "records": run.records,
        "created": run.products_created,
        "updated": run.products_updated,
        "unchanged": run.products_unchanged,
        "removed": run.products_removed,
        "errors": run.error_count,
        "wall_s": round(time.perf_counter() - started, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "rss_before_sync_mb": round(baseline, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _in_child(env: dict[str, str], *args: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        result = Path(out.name)
    try:
        subprocess.run([sys.executable, "-m", *args, "--json", str(result)], cwd=REPO, env=env, check=True)
        return json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)


def _products(env: dict[str, str], www: Path, base_url: str, items: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    feed = www / "feed.xml"
    t0 = time.perf_counter()
    generated = generate_merchant_feed(feed, items)
    report: dict[str, Any] = {
        "items": items,
        "feed_mb": round(generated.bytes / 1e6, 1),
        "generate_s": round(time.perf_counter() - t0, 1),
    }
    url = f"{base_url}/feed.xml"
    report["parse_only"] = _in_child(env, "bench.sync", "--child-parse", str(feed))
    print(
        f"parse only: {report['parse_only']['wall_s']} s, {report['parse_only']['peak_rss_mb']} MB",
        flush=True,
    )
    for name in ("first_sync", "unchanged_resync"):
        report[name] = _in_child(env, "bench.sync", "--child-sync", url, "--full")
        print(f"{name}: {report[name]}", flush=True)
    return report


# --- images: the real path against a bare loop ------------------------------------------------------


def _pictures(folder: Path, count: int, start: int) -> list[str]:
    """``count`` distinct 640x640 JPEGs (blocks of colour and noise, like product shots on a plain
    background), written under ``folder``; returns their names."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n in range(start, start + count):
        rng = np.random.default_rng(n)
        arr = np.full((640, 640, 3), 245, np.uint8)
        for _ in range(6):
            x, y = rng.integers(0, 480, 2)
            w, h = rng.integers(80, 320, 2)
            arr[y : y + h, x : x + w] = rng.integers(0, 255, 3)
        arr = np.clip(arr.astype(np.int16) + rng.integers(-12, 12, arr.shape), 0, 255).astype(np.uint8)
        name = f"p{n:05d}.jpg"
        Image.fromarray(arr).save(folder / name, "JPEG", quality=85)
        names.append(name)
    return names


def _model(weights: str, tiny: bool) -> Any:
    """The active model: the real bootstrap model (the default backbone's ImageNet weights from its
    installed package, or a local file), or the tiny one (random weights, 32 px)."""
    from search.services.model_versions import bootstrap_model_ensure

    if not tiny and (weights == "imagenet" or Path(weights).is_file()):
        return bootstrap_model_ensure(weights=weights_value(weights)).model
    from django.conf import settings

    from ml.export import export_saved_model
    from ml.model import build_embedding_model
    from search.models import ModelKind
    from search.services.model_versions import model_activate, model_version_register
    from search.vector_store import vector_store

    net = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=32, head=False, pooling="avg"
    )
    exported = export_saved_model(net, settings.MODELS_DIR, settings.TF_SERVING_MODEL_NAME, 1)
    record = model_version_register(
        version=1,
        kind=ModelKind.BOOTSTRAP,
        backbone="mobilenet_v2_035",
        embedding_dim=exported.embedding_dim,
        image_size=exported.image_size,
        export_path=str(exported.path),
    )
    vector_store().ensure_collection(record.collection, record.embedding_dim)
    model_activate(record)
    return record


def _pipeline_round(www: Path, base_url: str, names: list[str], tag: str) -> dict[str, Any]:
    from catalog.models import IndexStatus, ProductImage, SyncOrigin
    from catalog.services.sync import sync_run_create, sync_run_execute

    lines = []
    for p in range(0, len(names), 3):
        images = [f"{base_url}/img/{n}" for n in names[p : p + 3]]
        lines.append(json.dumps({"sku": f"{tag}-{p:05d}", "title": f"Product {p}", "images": images}))
    (www / f"{tag}.jsonl").write_text("\n".join(lines) + "\n")
    run = sync_run_create(location=f"{base_url}/{tag}.jsonl", origin=SyncOrigin.COMMAND)
    t0 = time.perf_counter()
    run = sync_run_execute(run)  # tasks in-process: returns once every image is fetched and indexed
    took = time.perf_counter() - t0
    indexed = ProductImage.objects.filter(
        product__sku__startswith=f"{tag}-", index_status=IndexStatus.INDEXED
    ).count()
    if run.state != "done" or indexed != len(names):
        raise SystemExit(f"pipeline round {tag}: {run.state}, {indexed}/{len(names)} indexed, {run.message}")
    return {"images": len(names), "wall_s": round(took, 3), "images_per_s": round(len(names) / took, 2)}


def _bare_round(base_url: str, names: list[str], model: Any, store: Any, collection: str) -> dict[str, Any]:
    from django.conf import settings

    from catalog.fetching import fetch_image, policy_from_settings
    from ml.preprocess import preprocess
    from search.embedders import embedder_for
    from workers.tasks import INDEX_CHUNK

    policy = policy_from_settings()
    embedder = embedder_for(model)
    steps = {"fetch": 0.0, "decode": 0.0, "embed": 0.0, "upsert": 0.0}
    t0 = time.perf_counter()
    with ThreadPoolExecutor(settings.CATALOG_SYNC_FETCH_THREADS) as pool:
        for start in range(0, len(names), INDEX_CHUNK):
            chunk = names[start : start + INDEX_CHUNK]
            ts = time.perf_counter()
            bodies = list(pool.map(lambda n: fetch_image(f"{base_url}/img/{n}", policy).content, chunk))
            td = time.perf_counter()
            pixels = np.stack([preprocess(b, model.image_size) for b in bodies])
            te = time.perf_counter()
            vectors = embedder.embed(pixels)
            tu = time.perf_counter()
            store.upsert(
                collection,
                [
                    (
                        str(uuid.uuid4()),
                        v,
                        {"product_id": 1, "sku": "B", "category": "", "price": None, "in_stock": True},
                    )
                    for v in vectors
                ],
            )
            steps["fetch"] += td - ts
            steps["decode"] += te - td
            steps["embed"] += tu - te
            steps["upsert"] += time.perf_counter() - tu
    took = time.perf_counter() - t0
    return {
        "images": len(names),
        "wall_s": round(took, 3),
        "images_per_s": round(len(names) / took, 2),
        "ms_per_image": {k: round(1000 * v / len(names), 2) for k, v in steps.items()},
    }


def _images(www: Path, base_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from search.vector_store import EdgeVectorStore, collection_name

    t0 = time.perf_counter()
    model = _model(args.weights, args.tiny)
    report: dict[str, Any] = {
        "model": f"{model.backbone}, {model.image_size} px, {model.embedding_dim}-d",
        "export_s": round(time.perf_counter() - t0, 1),
        "images_per_round": args.images,
    }
    warm = _pictures(www / "img", 6, 0)
    per_round = [
        _pictures(www / "img", 2 * args.images, 1000 + r * 2 * args.images) for r in range(args.rounds)
    ]
    bare_store = EdgeVectorStore(workdir / "bare-qdrant")
    coll = collection_name("bare")
    bare_store.ensure_collection(coll, model.embedding_dim)
    _bare_round(base_url, warm[:3], model, bare_store, coll)  # load the model and trace, untimed
    _pipeline_round(www, base_url, warm[3:], "WARM")
    report["pipeline"], report["bare"] = [], []
    for r, names in enumerate(per_round):
        half = len(names) // 2
        report["bare"].append(_bare_round(base_url, names[:half], model, bare_store, coll))
        report["pipeline"].append(_pipeline_round(www, base_url, names[half:], f"R{r}"))
        print(f"round {r}: pipeline {report['pipeline'][-1]} | bare {report['bare'][-1]}", flush=True)
    bare_store.close()
    ratios = [
        p["images_per_s"] / b["images_per_s"] for p, b in zip(report["pipeline"], report["bare"], strict=True)
    ]
    report["pipeline_images_per_s_p50"] = round(
        statistics.median(p["images_per_s"] for p in report["pipeline"]), 2
    )
    report["bare_images_per_s_p50"] = round(statistics.median(b["images_per_s"] for b in report["bare"]), 2)
    report["pipeline_over_bare_p50"] = round(statistics.median(ratios), 3)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items in the generated Merchant feed")
    parser.add_argument("--images", type=int, default=300, help="images per round and path")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="'imagenet' or a weights file")
    parser.add_argument(
        "--tiny", action="store_true", help="random-weight 32 px model instead of the real one"
    )
    parser.add_argument("--skip-products", action="store_true")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("var/bench/sync.json"))
    parser.add_argument("--child-sync", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--child-parse", type=Path, metavar="FEED", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_sync:
        result = child_sync(args.child_sync, args.full, images=False)
        args.json.write_text(json.dumps(result))
        return 0
    if args.child_parse:
        from bench.feeds import parse_only

        result = parse_only(args.child_parse)
        result["peak_rss_mb"] = round(_peak_rss_mb(), 1)  # see _peak_rss_mb: not ru_maxrss
        args.json.write_text(json.dumps(result))
        return 0

    os.chdir(REPO)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "catalog sync",
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    started = time.perf_counter()
    database_url = _scratch_database()
    with tempfile.TemporaryDirectory(prefix="bench-sync-", dir=args.out.parent) as tmp:
        workdir = Path(tmp)
        www = workdir / "www"
        www.mkdir()
        env = _environment(workdir, database_url)
        os.environ.update(env)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(www)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            time.sleep(0.5)
            if not args.skip_products:
                report["products"] = _products(env, www, base_url, args.items)
            if not args.skip_images:
                report["images"] = _images(www, base_url, workdir, args)
        finally:
            server.kill()
            from django.db import connections

            connections.close_all()
            _drop_database()
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _print(report, args)
    return 0


def _print(report: dict[str, Any], args: argparse.Namespace) -> None:
    out = io.StringIO()
    if "products" in report:
        p = report["products"]
        out.write(f"\n{p['items']:,}-item Merchant feed ({p['feed_mb']} MB), images off, --full\n")
        out.write("| step | products | wall s | CPU s | peak RSS MB |\n| --- | --- | --- | --- | --- |\n")
        po = p["parse_only"]
        out.write(
            f"| parse only | {po['products']:,} | {po['wall_s']} | {po['cpu_s']} | {po['peak_rss_mb']} |\n"
        )
        for name in ("first_sync", "unchanged_resync"):
            r = p[name]
            what = f"{r['created']:,} created" if name == "first_sync" else f"{r['unchanged']:,} unchanged"
            out.write(f"| {name} | {what} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} |\n")
    if "images" in report:
        i = report["images"]
        out.write(f"\nimages ({i['model']}; {args.rounds} rounds x {i['images_per_round']} images a path)\n")
        out.write(
            f"pipeline {i['pipeline_images_per_s_p50']}/s, bare loop {i['bare_images_per_s_p50']}/s, "
            f"ratio {i['pipeline_over_bare_p50']}\n"
        )
    out.write(
        f"\n{report['machine']}, load {report['load_average_at_start']} -> {report['load_average_at_end']}"
    )
    out.write(f"; {report['total_wall_s']} s; wrote {args.out}\n")
    print(out.getvalue())


if __name__ == "__main__":
    raise SystemExit(main())
