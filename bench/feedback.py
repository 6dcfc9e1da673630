"""Shoppers' clicks as training data, simulated on the Grocery Store Dataset.

    .venv/bin/python -m bench.feedback --smoke            # tiny: 4 products, 8 photos, random model; seconds
    .venv/bin/python -m bench.feedback                    # the whole test split: one training, 10-15 min
    .venv/bin/python -m bench.feedback --trained-before   # and a model trained on the catalog alone: 25 min

The protocol:
  1. The catalog: the dataset's web-shop ("iconic") images, one product per class (sku = class name),
     imported and indexed through the real write path.
  2. The model shoppers search with, and the "before" figure: in the full run the pretrained model the
     import made (what a one-photo shop runs: training without its shoppers' photos is advice only
     there, docs/benchmarks.md "One photo per product"); in --smoke a random 32 px model.
  3. The test split is halved by shoot, not by photo: a product's photos are numbered frames, and
     neighbouring frames are near-twins, so each product's frames in order are cut in two runs, the
     first for half A, the rest for half B (the report counts the half-B photos whose neighbouring
     frame is in half A: one per product at the cut). Shoppers search with the photos of half A through
     the real search API (POST /api/v1/search/ with a publishable key and Origin, as the widget sends
     it), SEARCH_LOG_PHOTOS on, and click the right product when it is in the top 8 (POST
     /api/v1/events/). The search log then holds (photo, clicked product) positives and (photo,
     skipped products) hard negatives: search.log_selectors.feedback_examples.
  4. Train with that feedback (`manage.py train --with-feedback`'s service: the clicked photos become
     training photos of their product, the skipped products hard negatives; the fifth of the shoppers
     held out for the evaluation gate stays out), and R@1 on half B before and after (half B never
     reaches the log: it is searched through the service, which logs nothing).
     ``--trained-before`` also trains on the catalog alone first and measures that (the old "before").
  5. The evaluation gate's verdicts, as the real reindex gives them: the model trained with feedback
     against the pretrained one, and with ``--trained-before`` the model trained on the catalog alone
     against it, once the shoppers have clicked. On this one-photo catalog the gate compares them on the
     held-out shoppers' clicked photos (search/services/gate.py); half B says which model is better.

Target (the earlier issue): R@1 on half B at least 3 points above training without feedback.

Runs in a throw-away environment under var/bench/ (bench.query's set-up: SQLite, Qdrant Edge, the
model in-process). Writes var/bench/feedback.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, REPO

TOP_K = 8  # shoppers look at the first 8 results (the widget's "Looks similar" default)
SMOKE_PRODUCTS = 4
SMOKE_PHOTOS_PER_PRODUCT = 2
SMOKE_IMAGE_SIZE = 32
SHOP_ORIGIN = "https://shop.example"


def train_candidate_model(*, with_feedback: bool, epochs: int | None, output: Path):
    """Train a candidate on the catalog (and, with feedback, on the shoppers' clicks the search log holds)
    through the product's path (search.services.training, as ``manage.py train [--with-feedback]``),
    then reindex to it and promote it (forced: the gate's held-out set is not this benchmark's half B)."""
    from django.conf import settings
    from django.core.management import call_command

    from ml.train import TrainConfig
    from search.services.training import train_candidate

    config = TrainConfig(weights=settings.BACKBONE_WEIGHTS, output_dir=str(output))
    if epochs:
        config.epochs = epochs
    outcome = train_candidate(config=config, with_feedback=with_feedback)
    call_command("reindex", "--model", str(outcome.model.version), "--force", verbosity=0)
    return outcome


def _frame(path: str) -> int:
    """The frame number of a Grocery photo (``Golden-Delicious_012.jpg`` -> 12)."""
    return int(Path(path).stem.rsplit("_", 1)[-1])


def _split_photos(
    data: Path, products: list[str], smoke: bool
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """(half A, half B, half-B photos whose neighbouring frame is in half A): each product's frames in
    order, the first half to A and the rest to B, so that a shoot's frames stay on one side."""
    from ml.grocery import split_items

    by_label: dict[str, list[str]] = {}
    for path, label in split_items(data, "test"):
        if label in set(products):
            by_label.setdefault(label, []).append(path)
    half_a: list[tuple[str, str]] = []
    half_b: list[tuple[str, str]] = []
    neighbours = 0
    for label in products:
        frames = sorted(by_label.get(label, []), key=_frame)
        if smoke:
            frames = frames[:SMOKE_PHOTOS_PER_PRODUCT]
        cut = len(frames) // 2
        half_a += [(p, label) for p in frames[:cut]]
        half_b += [(p, label) for p in frames[cut:]]
        in_a = {_frame(p) for p in frames[:cut]}
        neighbours += sum(1 for p in frames[cut:] if {_frame(p) - 1, _frame(p) + 1} & in_a)
    return half_a, half_b, neighbours


def _import_catalog(items: list[tuple[str, str]]) -> dict[str, int]:
    """One product per class with its iconic image, through the real write path; sku -> product id."""
    from catalog import services
    from catalog.models import IndexStatus, ProductImage

    ids = {}
    for path, name in items:
        product = services.product_create(
            sku=name, title=name.replace("-", " "), category="grocery", price="1.00"
        )
        services.product_image_add(
            product=product, data=Path(path).read_bytes(), original_name=Path(path).name
        )
        ids[name] = product.pk
    failed = ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).count()
    if failed:
        raise SystemExit(f"{failed} catalog images failed to index")
    return ids


def _register(export_dir: Path, kind: str, backbone: str, *, activate: bool = True):
    from search.models import ModelKind
    from search.services.model_versions import model_activate, model_version_register
    from search.vector_store import vector_store

    meta = json.loads((export_dir / "assets.extra" / "lookalike.json").read_text())
    record = model_version_register(
        version=int(meta.get("version") or export_dir.name),
        kind=ModelKind(kind),
        backbone=meta.get("backbone") or backbone,
        embedding_dim=int(meta["embedding_dim"]),
        image_size=int(meta["image_size"]),
        export_path=str(export_dir),
    )
    if activate:
        vector_store().ensure_collection(record.collection, record.embedding_dim)
        model_activate(record)
    return record


def _smoke_model(workdir: Path):
    import keras

    from ml.export import export_saved_model
    from ml.model import build_embedding_model

    keras.utils.set_random_seed(0)
    model = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=SMOKE_IMAGE_SIZE, head=False, pooling="avg"
    )
    result = export_saved_model(model, workdir / "models", "lookalike", 1, tflite=False)
    return _register(Path(result.path), "bootstrap", "mobilenet_v2_035")


def _gate_against_active(candidate) -> dict[str, Any]:
    """The evaluation gate's verdict on ``candidate`` against the model serving now (its collection is
    kept after it stepped down)."""
    from search import selectors
    from search.services import gate

    return gate.evaluate(candidate, selectors.active_model(), selectors.image_labels())


def _reindex_gate(version: int) -> dict[str, Any]:
    """The verdict the gate gave in the reindex that promoted model ``version`` (forced either way)."""
    from search.models import Job

    job = Job.objects.filter(kind="reindex", result__model_version=version).latest("created_at")
    return job.result["gate"]


def _recall_at_1(photos: list[tuple[str, str]]) -> dict[str, Any]:
    """Top-1 accuracy of the active model over ``photos``, through the search service (nothing logged)."""
    from search.services.searching import SearchQuery, search

    hits = 0
    for path, label in photos:
        outcome = search(SearchQuery(image=Path(path).read_bytes(), limit=1))
        hits += bool(outcome.hits) and outcome.hits[0].card["sku"] == label
    return {"recall@1": round(hits / len(photos), 4) if photos else None, "queries": len(photos)}


def _shoppers(photos: list[tuple[str, str]], key: str) -> dict[str, Any]:
    """Half A: search through the API as the widget does, and click the right product when shown."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ORIGIN=SHOP_ORIGIN)
    searches = clicks = 0
    positions: list[int] = []
    for n, (path, label) in enumerate(photos):
        # Each photo is another shopper: clicks train once per client and product
        # (search.log_selectors.feedback_examples), so one address for all would count as one shopper.
        shopper = {"REMOTE_ADDR": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}
        with open(path, "rb") as handle:
            answer = client.post("/api/v1/search/", {"image": handle, "limit": TOP_K}, **shopper)
        if answer.status_code != 200:
            raise SystemExit(f"search of {path} answered {answer.status_code}: {answer.content[:200]!r}")
        body = answer.json()
        searches += 1
        for position, hit in enumerate(body["results"], start=1):
            if hit["product"]["sku"] == label:
                event = {"search_id": body["search_id"], "product_id": hit["product"]["id"], "position": position,
                         "type": "click"}  # fmt: skip
                reported = client.post("/api/v1/events/", event, content_type="application/json", **shopper)
                if reported.status_code != 202:
                    raise SystemExit(
                        f"click report answered {reported.status_code}: {reported.content[:200]!r}"
                    )
                clicks += 1
                positions.append(position)
                break
    return {
        "searches": searches,
        "clicks": clicks,
        "hit_rate_at_8": round(clicks / searches, 4) if searches else None,
        "click_positions": {str(p): positions.count(p) for p in sorted(set(positions))},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Grocery Store Dataset folder")
    parser.add_argument("--weights", default="imagenet", help="BACKBONE_WEIGHTS: a file or 'imagenet'")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: TrainConfig's)")
    parser.add_argument("--smoke", action="store_true", help="tiny run that checks the simulation (seconds)")
    parser.add_argument(
        "--trained-before",
        action="store_true",
        help="also train on the catalog alone first and measure it (the earlier run's before)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "feedback.json")
    args = parser.parse_args(argv)

    if not (args.data / "dataset" / "test").is_dir():
        print(f"skipped: no Grocery Store dataset at {args.data} (pass --data)")
        return 0
    from ml.grocery import iconic_items

    catalog_items = iconic_items(args.data)
    if args.smoke:
        catalog_items = catalog_items[:SMOKE_PRODUCTS]
    half_a, half_b, neighbours = _split_photos(args.data, [name for _, name in catalog_items], args.smoke)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    os.environ["SEARCH_LOG_PHOTOS"] = "true"
    os.environ["BACKBONE_WEIGHTS"] = args.weights
    # Qdrant Edge's own threads can still be finishing a segment file just after the store closed: a
    # folder left behind then must not fail a run whose report is written.
    with tempfile.TemporaryDirectory(
        prefix="bench-feedback-", dir=args.out.parent, ignore_cleanup_errors=True
    ) as tmp:
        from bench.query import _setup_django  # the benchmarks' one private embedded environment

        _setup_django(Path(tmp))
        from apikeys.services import api_key_create
        from search.embedders import reset_embedders
        from search.log_selectors import feedback_examples
        from search.services.model_versions import bootstrap_model_ensure, model_activate
        from search.vector_store import reset_vector_store

        if args.smoke:
            model = _smoke_model(Path(tmp))
            _import_catalog(catalog_items)
        else:
            model = bootstrap_model_ensure(weights=args.weights).model
            _import_catalog(catalog_items)
        trained_before = None
        trained = None
        if args.trained_before and not args.smoke:
            pretrained = model
            trained = train_candidate_model(
                with_feedback=False, epochs=args.epochs, output=Path(tmp) / "before"
            )
            trained_before = _recall_at_1(half_b)
            # Shoppers search with what the shop runs: the pretrained model, active again.
            model_activate(pretrained)
        key = api_key_create(
            name="simulated shop", kind="publishable", origins=[SHOP_ORIGIN], rate="1000000/min"
        )
        before = _recall_at_1(half_b)
        shopping = _shoppers(half_a, key.secret)
        examples = list(feedback_examples())
        held_out = list(feedback_examples(part="gate"))
        gates: dict[str, Any] = {}
        if trained is not None:
            # The model trained on the catalog alone, judged now that shoppers have clicked.
            gates["trained_without_feedback"] = _gate_against_active(trained.model)
        report: dict[str, Any] = {
            "benchmark": "shoppers' clicks as training data (Grocery Store test split, halves A/B)",
            "date": time.strftime("%Y-%m-%d"),
            "python": sys.version.split()[0],
            "smoke": args.smoke,
            "split": "test, halved by shoot (each product's frames in order: first half A, rest B)",
            "half_b_with_neighbour_in_a": neighbours,
            "model": {"version": model.version, "kind": model.kind, "image_size": model.image_size},
            "catalog_products": len(catalog_items),
            "half_a_photos": len(half_a),
            "half_b_photos": len(half_b),
            "before": before,
            "trained_without_feedback": trained_before,
            "feedback": {
                **shopping,
                "examples": len(examples),
                "held_for_gate": len(held_out),
                "hard_negatives": sum(len(e.negative_skus) for e in examples),
            },
            "gate": gates,
        }
        report["after"] = None
        if not args.smoke:
            after = train_candidate_model(with_feedback=True, epochs=args.epochs, output=Path(tmp) / "after")
            report["after"] = _recall_at_1(half_b)
            gates["trained_with_feedback"] = _reindex_gate(after.model.version)
            report["after_model"] = {
                "version": after.model.version,
                "feedback_photos": after.model.metrics.get("feedback_photos"),
            }
        report["trained"] = not args.smoke
        report["wall_s"] = round(time.perf_counter() - started, 1)
        reset_vector_store()
        reset_embedders()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    feedback = report["feedback"]
    print(
        f"before ({report['model']['kind']} v{report['model']['version']}): R@1 {before['recall@1']} on {before['queries']} half-B photos; shoppers: {feedback['searches']} "
        f"searches, {feedback['clicks']} clicks (hit@8 {feedback['hit_rate_at_8']}), {feedback['examples']} "
        f"examples ({feedback['held_for_gate']} held out for the gate), {feedback['hard_negatives']} hard "
        f"negatives; after: {report['after']['recall@1'] if report['after'] else 'not trained (smoke)'}. "
        f"{report['wall_s']} s -> {args.out}"
    )
    from search.services.gate import gate_line

    for name, verdict in report["gate"].items():
        print(f"gate, {name.replace('_', ' ')} vs the pretrained model: {gate_line(verdict)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
