"""Retrieval benchmark on the Grocery Store Dataset: untrained backbone vs the trained model.

Train on the train split (plus the 81 catalog images as extra photos of their products), early-stop
on val, report on test under two protocols:
  photos:  query = a test photo, gallery = the train photos;
  catalog: query = a test photo, gallery = the 81 iconic (web-shop) catalog images.
``--split-by product`` instead holds out whole products (unseen at training time) and compares the
trained model with the untrained backbone on them. ``--evaluate-on val`` queries with the val photos
instead of the test photos: for choosing a setting (early stopping saw those photos too), with the
test reported once for the setting chosen.

    .venv/bin/python -m bench.retrieval                       # default loss
    .venv/bin/python -m bench.retrieval --losses contrastive,multi_similarity
    .venv/bin/python -m bench.retrieval --split-by product
    .venv/bin/python -m bench.retrieval --evaluate-on val --trainable-blocks 2

Writes var/bench/retrieval.json (or --output) and prints a table. Dataset: Klasson et al., WACV 2019.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, REPO


def _metrics(model: Any, query: Any, gallery: Any, *, exclude_self: bool = False) -> dict[str, float]:
    from ml.evaluate import retrieval_metrics
    from ml.train import embed_images

    q = embed_images(model, query.images)
    if exclude_self:  # leave-one-out within the query set (unseen products have no other gallery)
        gallery = query
    g = q if exclude_self else embed_images(model, gallery.images)
    m = retrieval_metrics(q, query.labels, g, gallery.labels, ks=(1, 5, 10), exclude_self=exclude_self)
    return {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in m.items()}


def _row(name: str, protocol: str, m: dict[str, Any]) -> str:
    return (
        f"{name:<40} {protocol:<10} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} "
        f"{m['recall@10']:>6.3f} {m['map@r']:>6.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Grocery Store Dataset folder")
    parser.add_argument(
        "--weights",
        default="imagenet",
        help="backbone weights: a file, or 'imagenet' (installed or downloaded)",
    )
    parser.add_argument("--backbone", default=None, help="default: TrainConfig's")
    parser.add_argument("--mode", choices=["cached", "finetune"], default=None, help="default: TrainConfig's")
    parser.add_argument("--trainable-blocks", type=int, default=None)
    parser.add_argument("--cache-views", type=int, default=None)
    parser.add_argument("--lr-top", type=float, default=None)
    parser.add_argument("--embedding-dim", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument(
        "--bootstrap-backbone",
        default=None,
        help="the untrained row's backbone (default: BOOTSTRAP_BACKBONE's)",
    )
    parser.add_argument("--bootstrap-size", type=int, default=None, help="default: BOOTSTRAP_IMAGE_SIZE's")
    parser.add_argument(
        "--losses", default=None, help="comma-separated; the best on val wins (default: TrainConfig's)"
    )
    parser.add_argument(
        "--image-size", type=int, default=None, help="train and serve size (default: TrainConfig's)"
    )
    parser.add_argument("--head-epochs", type=int, default=None)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default: TrainConfig's)",
    )
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--unfreeze-layers", type=int, default=None)
    parser.add_argument("--lr-finetune", type=float, default=None)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="smoke runs only")
    parser.add_argument("--split-by", choices=["photo", "product"], default="photo")
    parser.add_argument(
        "--evaluate-on",
        choices=["test", "val"],
        default="test",
        help="the photos that query (--split-by photo): val to choose a setting, test to report the choice once",
    )
    parser.add_argument("--output", default=str(REPO / "var" / "bench" / "retrieval.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = Path(args.data)
    if not (data / "dataset" / "classes.csv").is_file():
        print(f"skipped: Grocery Store Dataset not found at {data} (pass --data PATH)")
        return 0

    import keras
    from django.conf import settings as django_settings

    from ml.data import decode_items, split_items
    from ml.grocery import iconic_items
    from ml.grocery import split_items as grocery_split
    from ml.model import build_embedding_model
    from ml.train import TrainConfig, machine_description, train

    _django()
    started = time.perf_counter()
    defaults = TrainConfig()
    backbone = args.backbone or defaults.backbone
    size = args.image_size or defaults.image_size
    boot_backbone = args.bootstrap_backbone or django_settings.BOOTSTRAP_BACKBONE
    boot_size = args.bootstrap_size or django_settings.BOOTSTRAP_IMAGE_SIZE
    train_photos = grocery_split(data, "train")
    iconic = iconic_items(data)
    val_photos = grocery_split(data, "val")
    test_photos = grocery_split(data, "test")

    if args.split_by == "product":
        # Unseen products: hold out 30% of products from training; queries and gallery come from them.
        all_photos = train_photos + val_photos + test_photos
        seen, unseen = split_items(all_photos, val_fraction=0.3, split_by="product", seed=args.seed)
        unseen_labels = {label for _, label in unseen}
        train_items = seen + [it for it in iconic if it[1] not in unseen_labels]
        # Early stopping on a third of the unseen products would leak them; use held-out seen photos.
        train_items, val_items = split_items(train_items, val_fraction=0.1, seed=args.seed)
    else:
        train_items = train_photos + iconic  # a shop trains on its catalog images too
        val_items = val_photos

    decoded: dict[int, dict[str, Any]] = {}

    def eval_sets(at: int) -> dict[str, Any]:
        if at not in decoded:
            if args.split_by == "product":
                decoded[at] = {"unseen": decode_items(unseen, at)}
            else:
                gallery = decode_items(train_photos, at)
                names = gallery.label_names
                queries = test_photos if args.evaluate_on == "test" else val_photos
                decoded[at] = {
                    "train": gallery,
                    "queries": decode_items(queries, at, label_names=names),
                    "iconic": decode_items(iconic, at, label_names=names),
                }
        return decoded[at]

    def evaluate(model: Any, at: int) -> dict[str, dict[str, Any]]:
        sets = eval_sets(at)
        if args.split_by == "product":
            return {"unseen_leave_one_out": _metrics(model, sets["unseen"], None, exclude_self=True)}
        return {
            "photos": _metrics(model, sets["queries"], sets["train"]),
            "catalog": _metrics(model, sets["queries"], sets["iconic"]),
        }

    results: dict[str, Any] = {
        "dataset": "Grocery Store Dataset (Klasson et al., WACV 2019)",
        "split_by": args.split_by,
        "evaluated_on": args.evaluate_on if args.split_by == "photo" else "unseen products",
        "machine": machine_description(),
        "date": time.strftime("%Y-%m-%d"),
        "image_size": size,
        "backbone": backbone,
        "bootstrap": {"backbone": boot_backbone, "image_size": boot_size},
        "runs": {},
    }
    keras.utils.set_random_seed(args.seed)
    bootstrap = build_embedding_model(
        backbone=boot_backbone, weights=args.weights, image_size=boot_size, head=False, pooling="avg"
    )
    results["untrained"] = evaluate(bootstrap, boot_size)
    print(f"untrained: {json.dumps(results['untrained'])}", flush=True)
    if boot_size != size:
        decoded.pop(boot_size)  # free the bootstrap size's pixels before training

    out_dir = Path(args.output).parent
    # Runs keep their figures under the split that queried ("test" as before, or "val").
    report_key = args.evaluate_on if args.split_by == "photo" else "test"
    for loss in [x.strip() for x in (args.losses or defaults.loss).split(",") if x.strip()]:
        overrides = {
            k: v
            for k, v in {
                "mode": args.mode,
                "trainable_blocks": args.trainable_blocks,
                "cache_views": args.cache_views,
                "lr_top": args.lr_top,
                "embedding_dim": args.embedding_dim,
                "head_epochs": args.head_epochs,
                "epochs": args.epochs,
                "patience": args.patience,
                "unfreeze_layers": args.unfreeze_layers,
                "lr_finetune": args.lr_finetune,
                "steps_per_epoch": args.steps_per_epoch,
            }.items()
            if v is not None
        }
        config = TrainConfig(
            backbone=backbone,
            weights=args.weights,
            loss=loss,
            image_size=size,
            seed=args.seed,
            output_dir=str(out_dir / f"model-{args.split_by}-{loss}-{size}"),
            **overrides,
        )
        result = train(config, train_items, val_items, progress=True)
        model = keras.saving.load_model(result.model_path)
        results["runs"][loss] = {
            "val_recall@1": round(result.best_val_recall_at_1, 4),
            "best_epoch": result.best_epoch,
            "train_wall_time_s": result.wall_time_s,
            "timings": result.timings,
            "epochs_run": len(result.history),
            report_key: evaluate(model, size),
            "config": result.config,
        }
        print(f"{loss}: {json.dumps(results['runs'][loss][report_key])}", flush=True)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")

    if results["runs"]:
        results["best_loss_on_val"] = max(results["runs"], key=lambda k: results["runs"][k]["val_recall@1"])
    results["total_wall_time_s"] = round(time.perf_counter() - started, 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")

    print(f"\n{'model':<40} {'protocol':<10} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'mAP@R':>6}")
    for protocol, m in results["untrained"].items():
        print(_row(f"untrained {boot_backbone} ({boot_size}px)", protocol, m))
    for loss, run in results["runs"].items():
        for protocol, m in run[report_key].items():
            print(_row(f"trained {loss} (val R@1 {run['val_recall@1']:.3f})", protocol, m))
    for loss, run in results["runs"].items():
        print(
            f"{loss}: training {run['train_wall_time_s']:.0f}s, {run['epochs_run']} epochs, best epoch {run['best_epoch']}"
        )
    print(f"machine: {results['machine']}; results: {args.output}")
    return 0


def _django() -> None:
    # Settings (the bootstrap backbone's defaults) without a database: the benchmark touches none.
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    django.setup()


if __name__ == "__main__":
    sys.exit(main())
