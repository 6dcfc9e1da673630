"""The commonest shop: one photo per product. Untrained against trained, on the Grocery Store catalog.

    .venv/bin/python -m bench.one_photo                  # the 81 web-shop images as the catalog
    .venv/bin/python -m bench.one_photo --catalog photos  # one store photo per product instead

The catalog is one image per product; training has nothing but those (its positives are augmented
views, and it validates on fresh views: ml/holdout.py). Shoppers' photos (the test split) are then
searched against the catalog: Recall@1 / R@5 / mAP@R of the untrained backbone (pooled, as the
bootstrap model) and of the trained model, at the training defaults. Writes var/bench/one_photo.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import DEFAULT_DATA, REPO


def main(argv: list[str] | None = None) -> int:
    from ml.train_args import add_training_arguments, config_from_args

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--catalog", choices=["iconic", "photos"], default="iconic")
    parser.add_argument("--output", default=str(REPO / "var" / "bench" / "one_photo.json"))
    # The training options of `manage.py train` (e.g. --head-init random, --pooling avg); --split-by,
    # --holdout and --val-fraction do not apply: a one-photo catalog validates on augmented views.
    add_training_arguments(parser, weights_default="imagenet")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "dataset" / "classes.csv").is_file():
        print(f"skipped: Grocery Store Dataset not found at {data} (pass --data PATH)")
        return 0

    import keras

    from ml.data import decode_items
    from ml.evaluate import retrieval_metrics
    from ml.grocery import iconic_items
    from ml.grocery import split_items as grocery_split
    from ml.model import build_embedding_model
    from ml.train import embed_images, machine_description, train

    if args.catalog == "iconic":
        catalog = iconic_items(data)
    else:
        rng = np.random.default_rng(args.seed)
        by_product: dict[str, list[str]] = {}
        for path, name in grocery_split(data, "train"):
            by_product.setdefault(name, []).append(path)
        catalog = [(paths[int(rng.integers(len(paths)))], name) for name, paths in sorted(by_product.items())]
    config = config_from_args(args, output_dir=str(REPO / "var" / "bench" / "one-photo"))
    size = config.image_size
    gallery = decode_items(catalog, size)
    queries = decode_items(grocery_split(data, "test"), size, label_names=gallery.label_names)

    def scores(model: Any) -> dict[str, Any]:
        m = retrieval_metrics(
            embed_images(model, queries.images),
            queries.labels,
            embed_images(model, gallery.images),
            gallery.labels,
        )
        return {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in m.items()}

    keras.utils.set_random_seed(args.seed)
    untrained = build_embedding_model(
        backbone=config.backbone, weights=config.weights, image_size=size, head=False, pooling="avg"
    )
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "catalog": f"{len(catalog)} products, one {'web-shop image' if args.catalog == 'iconic' else 'store photo'} each",
        "queries": len(queries),
        "untrained": scores(untrained),
    }
    print(f"untrained: {json.dumps(results['untrained'])}", flush=True)
    result = train(config, catalog, None, progress=True)
    trained = keras.saving.load_model(result.model_path)
    results["trained"] = scores(trained)
    results["training"] = {
        "validation": result.validation,
        "val_recall@1": round(result.best_val_recall_at_1, 4),
        "best_epoch": result.best_epoch,
        "wall_time_s": result.wall_time_s,
        "config": result.config,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\n{'model':<12} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'mAP@R':>6}   catalog: {results['catalog']}")
    for name in ("untrained", "trained"):
        m = results[name]
        print(
            f"{name:<12} {m['recall@1']:>6.3f} {m['recall@5']:>6.3f} {m['recall@10']:>6.3f} {m['map@r']:>6.3f}"
        )
    print(
        f"training {result.wall_time_s:.0f} s, validation ({result.validation}) R@1 {result.best_val_recall_at_1:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
