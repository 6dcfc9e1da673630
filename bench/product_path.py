"""What a shop gets: the Grocery Store catalog through the product's own path, end to end.

    .venv/bin/python -m bench.product_path                      # defaults: ~30-40 min on 2 cores
    .venv/bin/python -m bench.product_path --queries 200 --epochs 2   # a smoke run
    .venv/bin/python -m bench.product_path --pretrained-only          # steps 1-2: what a shop has at import

1. ``import_catalog`` of the catalog (the train split's photos and the 81 web-shop images) into a fresh
   embedded install (SQLite, Qdrant Edge, the model in-process): the first import exports and activates
   the pretrained model and calibrates it from the catalog; the jobs it queues (the compact pretrained
   model, its reindex and calibration) run here next, as the web process's runner would run them.
2. Shoppers' photos (the test split) through ``POST /api/v1/search/``: Recall@1 of the first hit's
   product, and how the calibrated answers fare (``same`` right, ``no_match``).
3. ``manage.py train`` with the defaults (timed), ``manage.py reindex`` (the evaluation gate, promotion).
4. The same searches again on the trained model.

Also reported: how well training's validation figure predicted the test figure (the issue with random
photo holdout was that it did not). Runs in a throw-away folder under var/bench/. Writes
var/bench/product_path.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, EXTERNAL_SERVICES, REPO, embedded_settings, grocery_group


def _setup_django(workdir: Path, weights: str) -> None:
    os.environ.update(embedded_settings(workdir), BACKBONE_WEIGHTS=weights)
    # The visual answer and its verdict are what this measures: no photo is read (a re-ranked answer
    # carries no verdict), and the catalog's text is not read in the background meanwhile
    # (bench.text measures the words on the pack).
    os.environ.setdefault("SEARCH_TEXT_RERANK", "false")
    os.environ.setdefault("OCR_ENABLED", "false")
    for var in EXTERNAL_SERVICES:
        os.environ.pop(var, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _searches(
    client: Any,
    photos: list[tuple[str, str]],
    skus: dict[str, str],
    group_of: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Recall@1 of the first hit through the API, and the calibrated labels' record; with ``group_of``
    (a photo's path -> its group), Recall@1 by group as well."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    right = said_same = same_right = no_match = no_match_wrong = 0
    latencies = []
    by_group: dict[str, list[bool]] = {}
    for path, name in photos:
        data = Path(path).read_bytes()
        t0 = time.perf_counter()
        response = client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", data), "limit": 5})
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"search answered {response.status_code}: {response.content[:300]!r}")
        body = response.json()
        first = body["results"][0] if body["results"] else None
        hit = first is not None and first["product"]["sku"] == skus[name]
        right += hit
        if group_of is not None:
            by_group.setdefault(group_of(path), []).append(hit)
        if first is not None and first.get("match") == "same":
            said_same += 1
            same_right += hit
        no_match += body.get("no_match") is True
        no_match_wrong += body.get("no_match") is True and hit
    n = len(photos)
    latencies.sort()
    grouped = {g: round(sum(hits) / len(hits), 4) for g, hits in sorted(by_group.items())}
    return {
        **({"recall@1_by_group": grouped} if group_of is not None else {}),
        "queries": n,
        "recall@1": round(right / n, 4),
        "same_said": said_same,
        "same_precision": round(same_right / said_same, 4) if said_same else None,
        # Of the photos whose first hit is right, how many were told so ("same"): the answer's coverage.
        "same_said_of_right": round(same_right / right, 4) if right else None,
        "no_match_rate": round(no_match / n, 4),
        # "No exact match" heading an answer whose first hit was the product photographed.
        "no_match_of_right": round(no_match_wrong / right, 4) if right else None,
        "latency_ms_p50": round(latencies[n // 2], 1),
        "latency_ms_p95": round(latencies[min(n - 1, int(0.95 * n))], 1),
    }


def _run_queued_jobs() -> list[str]:
    """Run the jobs the import queued (and those they queue) here, in order; "kind: state" of each."""
    from search.jobs.records import job_claim
    from search.jobs.runner import job_run

    ran = []
    while (job := job_claim()) is not None:
        done = job_run(job)
        ran.append(f"{done.kind}: {done.state}")
        print(f"follow-up job {done.pk} {done.kind}: {done.state}", flush=True)
    return ran


def _print_table(results: dict[str, Any], names: tuple[str, ...]) -> None:
    print(
        f"\n{'model':<28} {'R@1':>6} {'same said':>10} {'same right':>11} {'of right':>9} {'no match':>9} "
        f"{'p50 ms':>7} {'p95 ms':>7}"
    )
    for name in names:
        r = results[name]
        precision = f"{r['same_precision']:.3f}" if r["same_precision"] is not None else "-"
        coverage = f"{r['same_said_of_right']:.3f}" if r["same_said_of_right"] is not None else "-"
        print(
            f"{name + ' v' + str(r['model']):<28} {r['recall@1']:>6.3f} {r['same_said']:>10} {precision:>11} "
            f"{coverage:>9} {r['no_match_rate']:>9.3f} {r['latency_ms_p50']:>7} {r['latency_ms_p95']:>7}"
        )
    for name in names:
        groups = ", ".join(f"{g} {v:.3f}" for g, v in results[name].get("recall@1_by_group", {}).items())
        print(f"{name}: R@1 by group: {groups}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--weights", default="imagenet", help="BACKBONE_WEIGHTS for the install")
    parser.add_argument("--queries", type=int, default=0, help="test photos searched (0: all 2,485)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: TrainConfig's)")
    parser.add_argument("--pretrained-only", action="store_true", help="stop before training")
    parser.add_argument(
        "--force",
        action="store_true",
        help="promote the trained model even if the gate rejects it, to measure it (the verdict is still recorded)",
    )
    parser.add_argument("--output", default=str(REPO / "var" / "bench" / "product_path.json"))
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "dataset" / "classes.csv").is_file():
        print(f"skipped: Grocery Store Dataset not found at {data} (pass --data PATH)")
        return 0
    (REPO / "var" / "bench").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="product-path-", dir=REPO / "var" / "bench"))
    _setup_django(workdir, args.weights)

    import numpy as np
    from django.core.management import call_command
    from django.test import Client

    from catalog.models import Product
    from ml.grocery import dataset_dir, read_classes
    from ml.grocery import split_items as grocery_split
    from search import selectors

    started = time.perf_counter()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "workdir": workdir.name, "steps": {}}
    manifest = workdir / "catalog.jsonl"
    call_command("make_grocery_manifest", str(data), "--out", str(manifest), stdout=StringIO())
    t0 = time.perf_counter()
    out = StringIO()
    call_command(
        "import_catalog",
        str(manifest),
        "--images-root",
        str(dataset_dir(data)),
        stdout=out,
        stderr=StringIO(),
    )
    results["steps"]["import_s"] = round(time.perf_counter() - t0, 1)
    print(out.getvalue().strip().splitlines()[-1], flush=True)
    t0 = time.perf_counter()
    results["steps"]["follow_up_jobs"] = _run_queued_jobs()
    results["steps"]["follow_up_s"] = round(time.perf_counter() - t0, 1)
    skus = {c.name: f"GS-{c.class_id:03d}" for c in read_classes(data)}
    assert Product.objects.count() == len(skus)

    photos = grocery_split(data, "test")
    if args.queries:
        rng = np.random.default_rng(0)
        photos = [photos[i] for i in sorted(rng.choice(len(photos), size=args.queries, replace=False))]
    client = Client()
    boot = selectors.active_model()
    results["pretrained"] = {"model": boot.version, "backbone": boot.backbone, "image_size": boot.image_size,
                             "dim": boot.embedding_dim,
                             "calibration": {k: v for k, v in boot.calibration.items() if k != "curves"},
                             **_searches(client, photos, skus, grocery_group)}  # fmt: skip
    print(f"pretrained: {json.dumps(results['pretrained'])}", flush=True)
    if args.pretrained_only:
        results["total_s"] = round(time.perf_counter() - started, 1)
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
        _print_table(results, ("pretrained",))
        print(f"results: {args.output}")
        return 0

    t0 = time.perf_counter()
    train_args = ["train"] + (["--epochs", str(args.epochs)] if args.epochs else [])
    out = StringIO()
    call_command(*train_args, stdout=out)
    results["steps"]["train_s"] = round(time.perf_counter() - t0, 1)
    print(out.getvalue().strip().splitlines()[-1], flush=True)
    t0 = time.perf_counter()
    out = StringIO()
    call_command("reindex", *(["--force"] if args.force else []), stdout=out)
    results["steps"]["reindex_s"] = round(time.perf_counter() - t0, 1)
    results["reindex"] = out.getvalue().strip().splitlines()[-1]  # the gate's verdict
    print(results["reindex"], flush=True)
    trained = selectors.active_model()
    selectors.forget_active_model()
    results["trained"] = {
        "model": trained.version,
        "backbone": trained.backbone,
        "image_size": trained.image_size,
        "validation": trained.metrics.get("validation"),
        "val_recall@1": trained.metrics.get("recall@1"),
        "calibration": {k: v for k, v in trained.calibration.items() if k != "curves"},
        **_searches(client, photos, skus, grocery_group),
    }
    results["val_predicts_test"] = {
        "validation_recall@1": trained.metrics.get("recall@1"),
        "test_recall@1": results["trained"]["recall@1"],
    }
    results["total_s"] = round(time.perf_counter() - started, 1)
    Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    _print_table(results, ("pretrained", "trained"))
    print(f"training {results['steps']['train_s']:.0f} s; validation R@1 {results['val_predicts_test']['validation_recall@1']} "
          f"({results['trained']['validation']}) vs test {results['trained']['recall@1']}; results: {args.output}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
