"""Training memory against catalog size: peak RSS of `ml.train` on catalogs of N one-photo products.

    .venv/bin/python -m bench.train_memory --products 2000 20000 --out var/bench/train_memory.json
    .venv/bin/python -m bench.train_memory --products 60 240 --epochs 1      # a quick look

A one-photo catalog is the case that grew: every product gets at least 16 cached views. The products
are made from the Grocery Store's training photos: product k is photo k mod P, cropped at a place and
scale of its own and tinted, saved as its own JPEG, so N can exceed the photos there are (the pixels
matter little here; sizes and counts do). Each size trains in a child process with the defaults of
`manage.py train` (apart from --epochs, which bounds the run's length, not its memory: caching comes
first and the epochs reuse what it made). The parent reads the child's peak RSS (VmHWM, via
getrusage) and the run's own timings, prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import DEFAULT_DATA, DEFAULT_WEIGHTS, REPO, weights_value
from ml.feature_cache import views_per_image
from ml.train_config import TrainConfig

TARGET_MB = 4096


def _make_catalog(data: Path, products: int, folder: Path) -> list[tuple[str, str]]:
    from PIL import Image

    from ml.grocery import split_items

    photos = [p for p, _ in split_items(data, "train")]
    rng = np.random.default_rng(products)
    items = []
    for k in range(products):
        with Image.open(photos[k % len(photos)]) as source:
            image = source.convert("RGB")
        w, h = image.size
        side = int(min(w, h) * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = image.crop((x, y, x + side, y + side))
        tint = Image.new("RGB", crop.size, tuple(int(c) for c in rng.integers(0, 256, 3)))
        out = folder / f"{k}.jpg"
        Image.blend(crop, tint, 0.15).save(out, quality=88)
        items.append((str(out), f"product-{k}"))
    return items


def _child(args: argparse.Namespace) -> int:
    """Train once on the catalog listed in args.items; write the timings to args.result."""
    from ml.train import train

    items = [tuple(line.split("\t")) for line in Path(args.items).read_text().splitlines()]
    config = TrainConfig(weights=weights_value(args.weights), output_dir=args.output, epochs=args.epochs)
    result = train(config, items, progress=True)  # type: ignore[arg-type]
    Path(args.result).write_text(json.dumps({"timings": result.timings, "wall_s": result.wall_time_s}))
    return 0


def _one(data: Path, products: int, epochs: int, weights: str, scratch: Path) -> dict[str, Any]:
    folder = scratch / f"catalog-{products}"
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    items = _make_catalog(data, products, folder)
    made_s = time.perf_counter() - t0
    listing, result = scratch / f"items-{products}.tsv", scratch / f"result-{products}.json"
    listing.write_text("\n".join(f"{p}\t{label}" for p, label in items))
    t0 = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.train_memory", "--child", "--items", str(listing), "--result", str(result),
         "--output", str(scratch / f"train-{products}"), "--epochs", str(epochs), "--weights", weights],
        cwd=REPO,
    )  # fmt: skip
    # wait4 gives this child's own peak (ru_maxrss, kB), not the largest of all children so far.
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"train_memory: training {products} products failed (exit {child.returncode})")
    wall = time.perf_counter() - t0
    peak_kb = usage.ru_maxrss
    run = json.loads(result.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    d = TrainConfig()
    labels = np.arange(products)
    views = int(views_per_image(labels, d.cache_views, d.min_views_per_product, d.max_cached_views).sum())
    return {
        "products": products,
        "photos": products,
        "cached_views": views,
        "peak_rss_mb": round(peak_kb / 1024),
        "catalog_made_s": round(made_s, 1),
        "train_wall_s": round(wall, 1),
        "timings": run["timings"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs per run (bounds the time, not the memory)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "train_memory.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--items", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    if not (args.data / "dataset" / "classes.csv").is_file():
        raise SystemExit(f"train_memory: the Grocery Store data is not at {args.data}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="train-memory-", dir=REPO / "var") as tmp:
        for n in sorted(args.products):
            print(f"== {n} one-photo products", flush=True)
            rows.append(_one(args.data, n, args.epochs, args.weights, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    report = {
        "benchmark": "train_memory",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "epochs": args.epochs,
        "target_peak_rss_mb": TARGET_MB,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\n{'products':>9} {'views':>7} {'peak RSS':>10} {'caching':>9} {'train wall':>11}")
    for r in rows:
        print(
            f"{r['products']:>9} {r['cached_views']:>7} {str(r['peak_rss_mb']) + ' MB':>10} "
            f"{r['timings'].get('cache_s', '?'):>8}s {r['train_wall_s']:>10}s"
        )
    print(f"target: peak RSS <= {TARGET_MB} MB at every size; JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
