"""One photo per product, balanced by shoppers' searches: the product's own path, no labels, no clicks.

    .venv/bin/python -m bench.balance                        # about 3 minutes on 2 cores
    .venv/bin/python -m bench.balance --evaluate-on val      # the val photos: how the defaults were chosen
    .venv/bin/python -m bench.balance --traffic 250 --evaluate-on val --limit 150   # a smoke run

1. ``import_catalog`` of the 81 Grocery web-shop images alone (one photo per product) into a fresh
   embedded install: the pretrained model a new shop runs.
2. Shoppers' traffic: the 2,640 train photos searched through ``POST /api/v1/search/``. Each search is
   logged with its query vector; nothing about which product a photo shows is recorded or used.
3. ``manage.py balance_answers`` fits the offsets on those logged searches (what the worker's periodic
   ``lookalike.balance_answers`` does once 200 photo searches are logged).
4. The test photos (or ``--evaluate-on val``) through the API twice: with SEARCH_BALANCE off (the shop's
   answer before) and on. Recall@1 of the first hit's product, overall and by group, and how the
   calibrated verdicts fare.

Reading the pack is off (``SEARCH_TEXT_RERANK=false``): this measures the visual answer, the figure the
0.313 baseline is (bench.text measures the words). ``--text`` reads the catalog's words first and
re-ranks by the pack's, as a shop's defaults do. Writes var/bench/balance.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, REPO, grocery_group
from bench.product_path import _searches, _setup_django


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--weights", default="imagenet", help="BACKBONE_WEIGHTS for the install")
    parser.add_argument("--evaluate-on", choices=("test", "val"), default="test")
    parser.add_argument("--traffic", type=int, default=0, help="train photos searched first (0: all 2,640)")
    parser.add_argument(
        "--text",
        action="store_true",
        help="read the catalog's words and re-rank by the pack's, as a shop has it",
    )
    parser.add_argument("--limit", type=int, default=0, help="photos evaluated (0: the whole split)")
    parser.add_argument("--output", default=str(REPO / "var" / "bench" / "balance.json"))
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "dataset" / "classes.csv").is_file():
        if os.environ.get("CI") == "true":
            raise SystemExit(f"Grocery Store Dataset not found at {data}")
        print(f"skipped: Grocery Store Dataset not found at {data} (pass --data PATH)")
        return 0
    (REPO / "var" / "bench").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="balance-", dir=REPO / "var" / "bench"))
    if args.text:
        os.environ.update(SEARCH_TEXT_RERANK="true", OCR_ENABLED="true")
    _setup_django(workdir, args.weights)

    from django.core.management import call_command
    from django.test import Client, override_settings

    from catalog.models import Product
    from ml.grocery import dataset_dir, read_classes
    from ml.grocery import split_items as grocery_split
    from ml.train import machine_description
    from search import selectors

    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "one photo per product, balanced by shoppers' searches (bench/balance.py)",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "python": platform.python_version(),
        "evaluated_on": args.evaluate_on,
        "steps": {},
    }
    manifest = workdir / "catalog.jsonl"
    call_command(
        "make_grocery_manifest",
        str(data),
        "--out",
        str(manifest),
        "--photos-per-product",
        "0",
        stdout=StringIO(),
    )
    out = StringIO()
    call_command("import_catalog", str(manifest), "--images-root", str(dataset_dir(data)), stdout=out)
    print(out.getvalue().strip().splitlines()[-1], flush=True)
    if args.text:  # what the background reader does after an import
        out = StringIO()
        call_command("read_image_text", stdout=out)
        print(out.getvalue().strip().splitlines()[-1], flush=True)
    results["text_rerank"] = args.text
    skus = {c.name: f"GS-{c.class_id:03d}" for c in read_classes(data)}
    assert Product.objects.count() == len(skus)
    model = selectors.active_model()
    results["model"] = {"version": model.version, "backbone": model.backbone, "image_size": model.image_size,
                        "dim": model.embedding_dim}  # fmt: skip

    client = Client()
    traffic = grocery_split(data, "train")
    if args.traffic:  # a sample across every product (the split lists its photos product by product)
        traffic = [traffic[i] for i in sorted(random.Random(0).sample(range(len(traffic)), args.traffic))]
    t0 = time.perf_counter()
    print(f"shoppers' traffic: {len(traffic)} train photos searched ...", flush=True)
    results["traffic"] = {"photos": len(traffic), "recall@1": _searches(client, traffic, skus)["recall@1"]}
    results["steps"]["traffic_s"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    out = StringIO()
    call_command("balance_answers", stdout=out)
    results["steps"]["fit_s"] = round(time.perf_counter() - t0, 1)
    print(out.getvalue().strip().splitlines()[-1] if out.getvalue().strip() else "fitted", flush=True)
    selectors.forget_active_model()
    fitted = selectors.active_model()
    if not fitted.balance.get("offsets"):
        raise SystemExit(f"the fit stored no offsets: {fitted.balance}")
    offsets = list(fitted.balance["offsets"].values())
    results["fit"] = {k: v for k, v in fitted.balance.items() if k != "offsets"}
    results["fit"]["offset_min"], results["fit"]["offset_max"] = min(offsets), max(offsets)

    photos = grocery_split(data, args.evaluate_on)
    if args.limit:
        photos = [photos[i] for i in sorted(random.Random(1).sample(range(len(photos)), args.limit))]
    for name, on in (("before", False), ("balanced", True)):
        with override_settings(SEARCH_BALANCE=on):
            selectors.forget_active_model()
            print(f"{name}: {len(photos)} {args.evaluate_on} photos ...", flush=True)
            results[name] = _searches(client, photos, skus, grocery_group)
    results["gain"] = round(results["balanced"]["recall@1"] - results["before"]["recall@1"], 4)
    results["total_s"] = round(time.perf_counter() - started, 1)
    Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(
        f"\n| answer ({args.evaluate_on} photos) | R@1 | fruit | packages | vegetables | same said | same right "
        "| no match | no match of right | p50 ms |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ("before", "balanced"):
        r = results[name]
        g = r["recall@1_by_group"]
        print(f"| {name} | {r['recall@1']:.3f} | {g.get('fruit', 0):.3f} | {g.get('packages', 0):.3f} | "
              f"{g.get('vegetables', 0):.3f} | {r['same_said']} | {r['same_precision']} | {r['no_match_rate']} | "
              f"{r['no_match_of_right']} | {r['latency_ms_p50']} |")  # fmt: skip
    print(f"\nfit: {results['fit']}; {results['total_s']:.0f} s; results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
