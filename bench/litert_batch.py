"""Images per second of the in-process LiteRT embedder by images per call, float and int8 files.

    .venv/bin/python -m bench.int8 --split val --recipes int8 --skip-quality   # makes the model (cached)
    .venv/bin/python -m bench.litert_batch --out var/bench/litert-batch.json

The model folder is the one ``bench.int8`` exports (the served model: the pretrained backbone with its
learned whitening, ``model.tflite`` and a verified ``model_int8.tflite``). 128 Grocery Store test photos
through ``ml.preprocess``; each (file, images per call) embeds all of them once per round, in an order
that reverses every round, after one warm-up call. What ``LITERT_BATCH_SIZE`` is chosen on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from bench.inputs import DEFAULT_DATA, REPO

DEFAULT_MODEL = REPO / "var" / "bench" / "int8-cache" / "models" / "lookalike" / "1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="an exported version folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 32])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "litert-batch.json")
    args = parser.parse_args(argv)
    if not (args.model / "model.tflite").is_file():
        print(f"skipped: no model.tflite in {args.model} (run bench.int8 first, or pass --model)")
        return 0

    from bench.embedding import _inputs
    from ml.serving import TFLiteEmbedder
    from ml.serving.litert import int8_verified

    precisions = ["float", "int8"] if int8_verified(args.model) else ["float"]
    size = json.loads((args.model / "assets.extra" / "lookalike.json").read_text())["image_size"]
    images, inputs = _inputs(args.data, int(size), 128, 0)
    embedders = {
        (p, b): TFLiteEmbedder(args.model, max_batch=b, precision=p) for p in precisions for b in args.batches
    }
    for embedder in embedders.values():
        embedder.embed(images[:32])
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in embedders}
    keys = list(embedders)
    for rnd in range(args.rounds):
        for key in keys if rnd % 2 == 0 else keys[::-1]:
            started = time.perf_counter()
            embedders[key].embed(images)
            rates[key].append(len(images) / (time.perf_counter() - started))
    report = {
        "benchmark": "LiteRT images per call",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "inputs": inputs,
        "images_per_s_median": {f"{p} x{b}": round(statistics.median(v), 1) for (p, b), v in rates.items()},
        "images_per_s_rounds": {f"{p} x{b}": [round(x, 1) for x in v] for (p, b), v in rates.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for precision in precisions:
        row = "  ".join(f"{b}: {report['images_per_s_median'][f'{precision} x{b}']}" for b in args.batches)
        print(f"{precision:>5} images/s by images per call  {row}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
