"""Calibrated answers on products the shop does not sell, on the Grocery Store split.

    .venv/bin/python -m bench.calibration

A fifth of the products are left out of the shop entirely (not trained on, not in the catalog). The
model is trained on the rest with the defaults, and its "same" threshold fitted on the validation
photos, as ``manage.py train`` does. Then the test photos are searched against the catalog (the
shop's photos and web-shop images):
  * photos of products in the catalog: how often "same" is said, and how often it is right (target:
    right at least 95% of the time it is said);
  * photos of the left-out products: how often the answer is "no match" (target: at least 90%).
Both along the threshold are written as curves (JSON and var/bench/calibration.png).
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--unseen-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(REPO / "var" / "bench" / "calibration.json"))
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "dataset" / "classes.csv").is_file():
        print(f"skipped: Grocery Store Dataset not found at {data} (pass --data PATH)")
        return 0

    import keras

    from ml import calibration
    from ml.data import decode_items
    from ml.grocery import iconic_items
    from ml.grocery import split_items as grocery_split
    from ml.train import TrainConfig, embed_images, machine_description, train
    from ml.unseen_calibration import scored_with_left_out

    rng = np.random.default_rng(args.seed)
    products = sorted({name for _, name in iconic_items(data)})
    unseen = set(
        rng.choice(products, size=round(len(products) * args.unseen_fraction), replace=False).tolist()
    )
    seen_only = [it for it in grocery_split(data, "train") + iconic_items(data) if it[1] not in unseen]
    val = [it for it in grocery_split(data, "val") if it[1] not in unseen]
    test = grocery_split(data, "test")
    config = TrainConfig(
        weights=args.weights, seed=args.seed, output_dir=str(REPO / "var" / "bench" / "calibration-model")
    )
    if args.epochs:
        config.epochs = args.epochs
    result = train(config, sorted(seen_only), val, progress=True)
    held = result.held_out
    fitted = calibration.fit(held.scored())  # as manage.py train fits them
    print(
        f"fitted on {fitted.queries} validation photos ({held.calibration_source}): same >= {fitted.same:.3f}, "
        f"margin {fitted.margin:.2f}",
        flush=True,
    )

    model = keras.saving.load_model(result.model_path)
    gallery = decode_items(seen_only, config.image_size)
    names = list(gallery.label_names)
    queries = decode_items(test, config.image_size, label_names=names)
    # The left-out products are not in the gallery: decoding the queries gave them indices after its.
    index = {n: i for i, n in enumerate(queries.label_names)}
    unseen_ids = {index[n] for n in unseen if n in index}
    if not unseen_ids:
        raise SystemExit("no test photo of a left-out product: raise --unseen-fraction")
    q = embed_images(model, queries.images)
    g = embed_images(model, gallery.images)
    in_catalog = ~np.isin(queries.labels, list(unseen_ids))
    # A left-out product's photo against the catalog, which never had it: any "same" is wrong.
    test_scored = scored_with_left_out(
        q[in_catalog], queries.labels[in_catalog], g, gallery.labels, q[~in_catalog]
    )
    out_rows = ~in_catalog
    said = (test_scored["in_score"] >= fitted.same) & (test_scored["in_margin"] >= fitted.margin)
    wrong_out = (test_scored["out_score"] >= fitted.same) & (test_scored["out_margin"] >= fitted.margin)
    test_calibration = calibration.Calibration(
        same=fitted.same,
        margin=fitted.margin,
        precision=float((said & test_scored["in_correct"]).sum() / max(1, said.sum())),
        coverage=float(said.mean()),
        no_match_unseen=float(1 - wrong_out.mean()),
        queries=int(in_catalog.sum()),
        met=False,
        curves=calibration.curves(test_scored, margin=fitted.margin),
    )
    test_calibration.met = test_calibration.precision >= 0.95 and test_calibration.no_match_unseen >= 0.90
    plot = calibration.plot(Path(args.output).with_suffix(".png"), test_scored, test_calibration)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "unseen_products": sorted(unseen),
        "fitted_on_validation": {**fitted.to_json(), "source": held.calibration_source},
        "test": {
            **test_calibration.to_json(),
            "in_catalog_queries": int(in_catalog.sum()),
            "unseen_queries": int(out_rows.sum()),
            "recall@1_in_catalog": round(float(test_scored["in_correct"].mean()), 4),
        },
        "plot": str(plot),
        "training_wall_time_s": result.wall_time_s,
    }
    Path(args.output).write_text(json.dumps(results, indent=2), encoding="utf-8")
    t = results["test"]
    print(
        f"\ntest: 'same' said for {t['coverage']:.3f} of {t['in_catalog_queries']} in-catalog photos, right "
        f"{t['precision']:.3f} of the time (target 0.95); {t['unseen_queries']} photos of left-out products answered "
        f"'no match' {t['no_match_unseen']:.3f} of the time (target 0.90); plot {plot}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
