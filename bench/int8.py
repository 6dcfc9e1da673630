"""The served model quantized to int8 against its float TFLite file: batch-1 speed and Recall@1, in one run.

    .venv/bin/python -m bench.int8 --split val --out var/bench/int8-val.json    # choose the recipe
    .venv/bin/python -m bench.int8 --split test --recipes int8 --out var/bench/int8-test.json   # report once

The model is the one the platform bootstraps on a catalog with pairs: the pretrained model
(BOOTSTRAP_BACKBONE at BOOTSTRAP_IMAGE_SIZE, ImageNet weights, average-pooled) with the learned
whitening to 256-d fitted as ``search/services/compact.py`` fits it (2,000 catalog photos drawn by
``sample_in_pairs``, ridge 0.3), exported through ``ml.export`` with ``int8_photos``: the calibration
photos drawn from the shop's catalog (train photos + the 81 catalog images) as
the platform draws them (``ml.projection.sample_per_product``). Every recipe in ``--recipes`` is converted from the same
SavedModel (the export itself keeps the first that verifies), then:

- quality: Recall@1 (``ml.evaluate.retrieval_metrics``) of the ``--split`` photos as queries against
  "shop photos" (train photos + catalog images) and "one photo" (the catalog images), every image
  embedded by the file under test (queries and gallery alike, as a served index would be);
- speed: batch-1 calls, the files taking turns in each iteration (so the machine's load hits all
  alike), wall time at 1 and 2 interpreter threads, and CPU time of the calling thread at 1 thread
  (XNNPACK runs there; the figure a busy machine disturbs least).

Decoded photos, the raw features of the fit and the exported model are cached under
var/bench/int8-cache/, so the test run reuses the val run's model. Writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import DEFAULT_DATA, REPO

WARMUP = 5
WHITEN_RIDGE = 0.3  # search/services/compact.py's
FIT_PHOTOS = 2000  # BOOTSTRAP_COMPACT_MAX_PHOTOS
DIM = 256  # BOOTSTRAP_COMPACT_DIM


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _decoded(data: Path, cache: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, S, S, 3] through ml.preprocess, product names [N]) of one split, cached as .npy."""
    from ml.data import decode_items
    from ml.grocery import iconic_items, split_items

    images_path, labels_path = cache / f"{split}-{size}.npy", cache / f"{split}-{size}-labels.npy"
    if images_path.is_file() and labels_path.is_file():
        return np.load(images_path, mmap_mode="r"), np.load(labels_path)
    items = iconic_items(data) if split == "iconic" else split_items(data, split)
    decoded = decode_items(items, size)
    labels = np.asarray([decoded.label_names[i] for i in decoded.labels])
    np.save(images_path, decoded.images)
    np.save(labels_path, labels)
    return decoded.images, labels


def _embed(runner: Any, images: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate(
        [runner.run(np.ascontiguousarray(images[i : i + batch])) for i in range(0, len(images), batch)]
    )


def _export(args: Any, cache: Path, catalog: np.ndarray, catalog_y: np.ndarray) -> tuple[Path, dict]:
    """The whitened model exported with its int8 file (cached); (version folder, lookalike.json)."""
    from ml import tflite
    from ml.export import export_saved_model
    from ml.model import build_embedding_model, with_projection
    from ml.projection import Projection, fit_whitening, sample_in_pairs, sample_per_product

    version = cache / "models" / "lookalike" / "1"
    if not (version / "saved_model.pb").is_file():
        raw = build_embedding_model(
            backbone=args.backbone, weights="imagenet", image_size=args.image_size, head=False, pooling="avg"
        )
        picked = sample_in_pairs(catalog_y, FIT_PHOTOS, seed=0)
        if (cache / "projection.npz").is_file():  # a run stopped after the fit
            projection = Projection.load(cache / "projection.npz")
        else:
            shutil.rmtree(cache / "raw", ignore_errors=True)
            raw_dir = export_saved_model(raw, cache / "raw", "raw", 1, tflite=True).path
            runner = tflite.TFLiteRunner(raw_dir / tflite.TFLITE_FILE, num_threads=2)
            features = _embed(runner, catalog[picked])
            projection = fit_whitening(features, catalog_y[picked], DIM, ridge=WHITEN_RIDGE)
            projection.save(cache / "projection.npz")
        shutil.rmtree(cache / "models", ignore_errors=True)
        photos = catalog[sample_per_product(catalog_y, args.calibration, seed=0)]
        print(f"fitted on {len(picked)} photos; exporting with {len(photos)} int8 photos", flush=True)
        export_saved_model(
            with_projection(raw, projection),
            cache / "models",
            "lookalike",
            1,
            int8_photos=np.ascontiguousarray(photos),
        )
    meta = json.loads((version / "assets.extra" / "lookalike.json").read_text())
    return version, meta


def _candidates(args: Any, cache: Path, version: Path, catalog: np.ndarray, catalog_y: np.ndarray) -> dict:
    """{recipe: path} of each quantized file under test, converted from the export's SavedModel."""
    from ml import tflite
    from ml.export import INT8_HOLDOUT_EVERY
    from ml.projection import sample_per_product

    photos = catalog[sample_per_product(catalog_y, args.calibration, seed=0)]
    calibration = photos[np.arange(len(photos)) % INT8_HOLDOUT_EVERY != 0]  # as the export splits them
    out = {}
    for recipe in args.recipes.split(","):
        path = cache / f"candidate-{recipe}.tflite"
        if not path.is_file():
            started = time.perf_counter()
            flatbuffer = tflite.convert_saved_model(
                version, quantize=recipe, representative=calibration if recipe == "int8" else None
            )
            path.write_bytes(flatbuffer)
            print(f"{recipe}: converted in {time.perf_counter() - started:.0f} s", flush=True)
        out[recipe] = path
    return out


def _quality(files: dict[str, Path], queries: Any, galleries: dict[str, Any]) -> dict[str, Any]:
    from ml import tflite
    from ml.evaluate import retrieval_metrics

    (q_images, q_y), (catalog, catalog_y), iconic_mask = queries, galleries["catalog"], galleries["iconic"]
    out: dict[str, Any] = {}
    hits: dict[tuple[str, str], np.ndarray] = {}
    for name, path in files.items():
        started = time.perf_counter()
        runner = tflite.TFLiteRunner(path, num_threads=2)
        q, g = _embed(runner, q_images), _embed(runner, catalog)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)  # as TFLiteEmbedder returns them
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        row: dict[str, Any] = {}
        for gallery, mask in (("shop photos", slice(None)), ("one photo", iconic_mask)):
            m = retrieval_metrics(q, q_y, g[mask], catalog_y[mask], ks=(1,))
            row[gallery] = round(float(m["recall@1"]), 4)
            # Which queries' first hit is right, for the paired comparison with the float file.
            hits[(name, gallery)] = catalog_y[mask][np.argmax(q @ g[mask].T, axis=1)] == q_y
        row["embed_s"] = round(time.perf_counter() - started, 1)
        if name != "float":
            # Paired: queries the float file got right and this one wrong, and the other way round.
            # Their difference over the queries is the loss; their sum says how much of it is noise.
            row["queries_lost_gained"] = {
                gallery: [
                    int(np.sum(hits[("float", gallery)] & ~hits[(name, gallery)])),
                    int(np.sum(~hits[("float", gallery)] & hits[(name, gallery)])),
                ]
                for gallery in ("shop photos", "one photo")
            }
        out[name] = row
        print(f"quality {name}: {row}", flush=True)
    return out


def _speed(files: dict[str, Path], images: np.ndarray, iterations: int) -> dict[str, Any]:
    from ml import tflite

    out: dict[str, Any] = {}
    names = list(files)
    for threads in (1, 2):
        runners = {n: tflite.TFLiteRunner(p, num_threads=threads) for n, p in files.items()}
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for i in range(WARMUP + iterations):
            x = np.ascontiguousarray(images[i % len(images)][None])
            for n in names if i % 2 == 0 else names[::-1]:
                c0, t0 = time.thread_time(), time.perf_counter()
                runners[n].run(x)
                t1, c1 = time.perf_counter(), time.thread_time()
                if i >= WARMUP:
                    wall[n].append(t1 - t0)
                    cpu[n].append(c1 - c0)
        for n in names:
            entry = out.setdefault(n, {})
            entry[f"wall_p50_ms_{threads}t"] = round(statistics.median(wall[n]) * 1000, 2)
            if threads == 1:
                entry["cpu_p50_ms_1t"] = round(statistics.median(cpu[n]) * 1000, 2)
        print(f"speed, {threads} thread(s): {json.dumps(out)}", flush=True)
    for n in names:
        if n != "float":
            for key in list(out[n]):
                if not key.startswith("ratio"):
                    out[n][f"ratio_{key}"] = round(out[n][key] / out["float"][key], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=348)
    parser.add_argument("--split", choices=["val", "test"], default="val", help="the query photos")
    parser.add_argument("--recipes", default="int8,dynamic", help="quantization recipes under test")
    parser.add_argument("--calibration", type=int, default=250, help="catalog photos given to the export")
    parser.add_argument(
        "--iterations", type=int, default=60, help="timed batch-1 calls per file and thread count"
    )
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "bench" / "int8-cache")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "int8.json")
    args = parser.parse_args(argv)
    if not (args.data / "dataset").is_dir():
        print(f"skipped: no Grocery Store Dataset at {args.data}")
        return 0

    started = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "benchmark": "int8 (quantized TFLite) vs float TFLite of the served model",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPU cores",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "queries": args.split,
    }
    train, train_y = _decoded(args.data, args.cache, "train", args.image_size)
    iconic, iconic_y = _decoded(args.data, args.cache, "iconic", args.image_size)
    catalog = np.concatenate([np.asarray(train), np.asarray(iconic)])
    catalog_y = np.concatenate([train_y, iconic_y])
    queries = _decoded(args.data, args.cache, args.split, args.image_size)
    print(f"decoded: {len(catalog)} catalog, {len(queries[0])} {args.split}", flush=True)

    version, meta = _export(args, args.cache, catalog, catalog_y)
    report["export_tflite_int8"] = meta["tflite_int8"]
    files = {"float": version / "model.tflite", **_candidates(args, args.cache, version, catalog, catalog_y)}
    report["bytes"] = {n: p.stat().st_size for n, p in files.items()}
    iconic_mask = np.arange(len(catalog)) >= len(train)
    if not args.skip_quality:
        quality = _quality(files, queries, {"catalog": (catalog, catalog_y), "iconic": iconic_mask})
        for name, row in quality.items():
            if name != "float":
                row["loss"] = {
                    g: round(quality["float"][g] - row[g], 4) for g in ("shop photos", "one photo")
                }
        report["recall@1"] = quality
    if not args.skip_speed:
        report["speed_batch1"] = _speed(files, np.asarray(queries[0][:64]), args.iterations)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
