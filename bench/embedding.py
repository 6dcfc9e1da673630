"""Embedding speed of the served model: TFLite in-process against the SavedModel, in one run.

    .venv/bin/python -m bench.embedding                      # the default backbone and size, ImageNet weights; ~1 min
    .venv/bin/python -m bench.embedding --tflite-threads 1   # the thread-count comparison
    .venv/bin/python -m bench.embedding --backbone mobilenet_v3_small --weights none --image-size 160

The model is the bootstrap model (ml.model, ``head=False``: pooled backbone features, L2-normalised)
built with the given backbone and weights and exported through ml.export into a temporary folder,
so both runtimes load the files a deployment serves: ``model.tflite`` through ``TFLiteEmbedder``
(what ``open_local_embedder`` returns) and the SavedModel through ``LocalEmbedder`` (the runtime
TF Serving uses without ``--prefer_tflite_model``). Inputs are Grocery Store test photos through
ml.preprocess when the dataset is there, random pixels otherwise (the speed does not depend on them).

For batch 1 and the large batch: warm-up calls, then N timed iterations in which the two runtimes
take turns going first, so neither finds caches the other warmed. Wall time of ``embed`` per call.
Writes var/bench/embedding.json (medians, p95, images/s, the speed ratio, machine, date, load) and
prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import DEFAULT_DATA, REPO

WARMUP = 10  # first calls pay for graph tracing, arena growth and page-cache misses
RUNTIMES = ("tflite", "savedmodel")


def _stats(batch: int, samples_s: list[float]) -> dict[str, float]:
    s = sorted(samples_s)
    p50 = statistics.median(s)
    return {
        "p50_ms": round(p50 * 1000, 3),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))] * 1000, 3),
        "mean_ms": round(statistics.fmean(s) * 1000, 3),
        "images_per_s": round(batch / p50, 1),
        "n": len(s),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _inputs(data: Path, image_size: int, count: int, seed: int) -> tuple[np.ndarray, str]:
    """``count`` model inputs: preprocessed test photos when the dataset is there, else random pixels."""
    from ml.preprocess import preprocess

    photos = (
        sorted((data / "dataset" / "test").rglob("*.jpg")) if (data / "dataset" / "test").is_dir() else []
    )
    rng = np.random.default_rng(seed)
    if len(photos) >= count:
        picks = rng.choice(len(photos), size=count, replace=False)
        images = np.stack([preprocess(photos[int(i)].read_bytes(), image_size) for i in picks])
        return images, f"{count} Grocery Store test photos through ml.preprocess"
    return rng.integers(0, 256, size=(count, image_size, image_size, 3), dtype=np.uint8), "random pixels"


def _measure(
    embedders: dict[str, Any], images: np.ndarray, batch: int, iterations: int
) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for i in range(WARMUP + iterations):
        chunk = images[(np.arange(batch) + i * batch) % len(images)]  # different images each time
        order = RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]
        for name in order:
            t0 = time.perf_counter()
            embedders[name].embed(chunk)
            if i >= WARMUP:
                samples[name].append(time.perf_counter() - t0)
    return {name: _stats(batch, s) for name, s in samples.items()}


def _agreement(embedders: dict[str, Any], images: np.ndarray) -> float:
    a = embedders["tflite"].embed(images).astype(np.float64)
    b = embedders["savedmodel"].embed(images).astype(np.float64)
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.min(cosine))


def _table(report: dict[str, Any]) -> str:
    rows = ["| batch | runtime | p50 ms | p95 ms | images/s |", "| --- | --- | --- | --- | --- |"]
    for result in report["results"]:
        for name in RUNTIMES:
            r = result[name]
            rows.append(
                f"| {result['batch']} | {name} | {r['p50_ms']} | {r['p95_ms']} | {r['images_per_s']} |"
            )
    ratios = "; ".join(
        f"batch {r['batch']}: TFLite x{r['tflite_speedup_p50']} (p50)" for r in report["results"]
    )
    return "\n".join(rows) + f"\n{ratios}"


def main(argv: list[str] | None = None) -> int:
    from ml.backbones import DEFAULT_BACKBONE
    from ml.serving.litert import DEFAULT_TFLITE_THREADS
    from ml.train_config import TrainConfig

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE)
    parser.add_argument(
        "--weights", default="imagenet", help="'imagenet', a backbone weights file, or 'none' (random)"
    )
    parser.add_argument("--image-size", type=int, default=TrainConfig.image_size)
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="Grocery Store Dataset folder (inputs)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="the large batch (indexing's EMBED_BATCH_SIZE)"
    )
    parser.add_argument("--iterations", type=int, default=200, help="timed batch-1 calls per runtime")
    parser.add_argument(
        "--batch-iterations", type=int, default=20, help="timed large-batch calls per runtime"
    )
    parser.add_argument("--tflite-threads", type=int, default=DEFAULT_TFLITE_THREADS)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "embedding.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    weights: str | None = None if args.weights.lower() == "none" else args.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        print(f"skipped: no backbone weights at {weights} (pass --weights, or --weights none)")
        return 0

    from ml.export import export_saved_model
    from ml.model import build_embedding_model
    from ml.serving import LocalEmbedder, TFLiteEmbedder

    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    images, inputs = _inputs(args.data, args.image_size, max(64, 2 * args.batch_size), args.seed)
    report: dict[str, Any] = {
        "benchmark": "embedding: TFLite (LiteRT, in-process) vs SavedModel (TensorFlow, in-process)",
        "date": time.strftime("%Y-%m-%d"),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {_cpu_model()}, {os.cpu_count()} CPU cores",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "inputs": inputs,
        "warmup": WARMUP,
    }
    with tempfile.TemporaryDirectory(prefix="bench-embedding-", dir=args.out.parent) as tmp:
        model = build_embedding_model(
            backbone=args.backbone, weights=weights, image_size=args.image_size, head=False, pooling="avg"
        )
        t0 = time.perf_counter()
        exported = export_saved_model(model, Path(tmp), "bench", 1)
        export_s = time.perf_counter() - t0
        meta = json.loads((exported.path / "assets.extra" / "lookalike.json").read_text())
        embedders = {
            "tflite": TFLiteEmbedder(
                exported.path, max_batch=args.batch_size, num_threads=args.tflite_threads
            ),
            "savedmodel": LocalEmbedder(exported.path, max_batch=args.batch_size),
        }
        report["model"] = {
            "backbone": args.backbone,
            "weights": "random" if weights is None else Path(weights).name,
            "image_size": exported.image_size,
            "embedding_dim": exported.embedding_dim,
            "export_s_with_tflite": round(export_s, 1),
            "tflite": meta["tflite"],
            "tflite_threads": embedders["tflite"].num_threads,
        }
        report["min_cosine_tflite_vs_savedmodel"] = _agreement(embedders, images[: args.batch_size])
        report["results"] = []
        for batch, iterations in ((1, args.iterations), (args.batch_size, args.batch_iterations)):
            measured = _measure(embedders, images, batch, iterations)
            tfl, saved = measured["tflite"], measured["savedmodel"]
            report["results"].append(
                {
                    "batch": batch,
                    **measured,
                    "tflite_speedup_p50": round(saved["p50_ms"] / tfl["p50_ms"], 1),
                }
            )
            print(
                f"batch {batch:>3}: TFLite p50 {tfl['p50_ms']} ms ({tfl['images_per_s']} images/s), "
                f"SavedModel p50 {saved['p50_ms']} ms ({saved['images_per_s']} images/s)",
                flush=True,
            )
        for embedder in embedders.values():
            embedder.close()
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(_table(report))
    print(
        f"\n{report['model']['backbone']} at {report['model']['image_size']} px, {inputs}; TFLite with "
        f"{report['model']['tflite_threads']} thread(s); export {report['model']['export_s_with_tflite']} s "
        f"(conversion {meta['tflite']['convert_s']} s). {report['machine']}, load "
        f"{report['load_average_at_start']} -> {report['load_average_at_end']}; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
