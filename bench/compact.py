"""Compact pretrained vectors: Recall@1 of the raw 1280-d features against PCA to 256 / 128 dims.

    .venv/bin/python -m bench.compact --out var/bench/compact.json

The pretrained model (BOOTSTRAP_BACKBONE at BOOTSTRAP_IMAGE_SIZE, average-pooled, ImageNet weights)
embeds the Grocery Store photos once; the features are cached under var/bench/compact-features/ so
reruns take seconds. The projection is fitted as the platform fits it (ml/projection.py, samples
drawn by ``sample_per_product``) on the shop's catalog only: the train photos and the 81 web-shop
images. Queries are the val photos (which choose centred or not) and the test photos (reported once);
galleries are "shop photos" (train photos + catalog images) and "one photo" (the 81 catalog images).
A sample-size sweep on val shows how many catalog photos a fit needs (BOOTSTRAP_COMPACT_MIN_PHOTOS).
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

SPLITS = ("train", "val", "test", "iconic")
CHUNK = 128  # images decoded at a time: 348 px uint8 photos are 363 KB each


def _features(data: Path, cache: Path, backbone: str, size: int, weights: str | None) -> dict[str, Any]:
    """{split: (features float32 [N, 1280], product names [N])}, extracted once and cached."""
    from ml.grocery import iconic_items, split_items

    out: dict[str, Any] = {}
    model = None
    for split in SPLITS:
        path = cache / f"{backbone}-{size}-{split}.npz"
        if path.is_file():
            with np.load(path) as saved:
                out[split] = (saved["features"], saved["labels"], float(saved["seconds"]))
            continue
        from ml.data import decode_items
        from ml.model import build_embedding_model
        from ml.train import embed_images

        if model is None:
            model = build_embedding_model(
                backbone=backbone, weights=weights, image_size=size, head=False, pooling="avg"
            )
        items = iconic_items(data) if split == "iconic" else split_items(data, split)
        started = time.perf_counter()
        feats, labels = [], []
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            decoded = decode_items(chunk, size)
            feats.append(embed_images(model, decoded.images, batch_size=32))
            labels += [decoded.label_names[i] for i in decoded.labels]
            print(f"{split}: {start + len(chunk)}/{len(items)}", flush=True)
        seconds = time.perf_counter() - started
        features = np.concatenate(feats).astype(np.float32)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, features=features, labels=np.array(labels), seconds=seconds)
        out[split] = (features, np.array(labels), seconds)
    return out


def _time_export(data: Path, args: Any, center: bool, dim: int) -> dict[str, Any]:
    """What the bootstrap does on a catalog at the photo cap: decode and embed 2,000 photos with the raw
    model, fit, export the compact model (SavedModel + model.tflite, both verified)."""
    import tempfile

    from ml.data import decode_items
    from ml.export import export_saved_model
    from ml.grocery import iconic_items, split_items
    from ml.model import build_embedding_model, with_projection
    from ml.projection import fit_projection, sample_per_product
    from ml.train import embed_images
    from ml.train_args import parse_weights

    items = split_items(data, "train") + iconic_items(data)
    picked = sample_per_product([name for _, name in items], 2000, seed=0)
    started = time.perf_counter()
    raw = build_embedding_model(
        backbone=args.backbone,
        weights=parse_weights(args.weights),
        image_size=args.image_size,
        head=False,
        pooling="avg",
    )
    build_s = time.perf_counter() - started
    features = []
    for start in range(0, len(picked), CHUNK):
        decoded = decode_items([items[i] for i in picked[start : start + CHUNK]], args.image_size)
        features.append(embed_images(raw, decoded.images, batch_size=32))
    embed_s = time.perf_counter() - started - build_s
    projection = fit_projection(np.concatenate(features), dim, center=center)
    fit_s = time.perf_counter() - started - build_s - embed_s
    with tempfile.TemporaryDirectory() as tmp:
        result = export_saved_model(with_projection(raw, projection), tmp, "lookalike", 1)
    export_s = time.perf_counter() - started - build_s - embed_s - fit_s
    return {
        "photos": len(picked),
        "build_s": round(build_s, 1),
        "embed_s": round(embed_s, 1),
        "fit_s": round(fit_s, 2),
        "export_s": round(export_s, 1),
        "embedding_dim": result.embedding_dim,
        "savedmodel_max_abs_diff": result.max_abs_diff,
        "tflite_max_abs_diff": result.tflite_max_abs_diff,
    }


def _recall1(queries: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray) -> float:
    from ml.evaluate import retrieval_metrics

    m = retrieval_metrics(queries, q_labels, gallery, g_labels, ks=(1,))
    return round(float(m["recall@1"]), 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Grocery Store Dataset folder")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=348)
    parser.add_argument("--dims", default="256,128")
    parser.add_argument("--cache", default=str(REPO / "var" / "bench" / "compact-features"))
    parser.add_argument("--out", default=str(REPO / "var" / "bench" / "compact.json"))
    parser.add_argument(
        "--time-export",
        action="store_true",
        help="also embed 2,000 catalog photos with the raw model, fit, and export the compact model (timed)",
    )
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "dataset" / "classes.csv").is_file():
        print(f"skipped: Grocery Store Dataset not found at {data} (pass --data PATH)")
        return 0

    from ml.projection import apply_projection, fit_projection, sample_per_product
    from ml.train import machine_description
    from ml.train_args import parse_weights

    feats = _features(data, Path(args.cache), args.backbone, args.image_size, parse_weights(args.weights))
    (train, train_y, _), (iconic, iconic_y, _) = feats["train"], feats["iconic"]
    catalog, catalog_y = np.concatenate([train, iconic]), np.concatenate([train_y, iconic_y])
    galleries = {"shop photos": (catalog, catalog_y), "one photo": (iconic, iconic_y)}
    queries = {split: feats[split][:2] for split in ("val", "test")}

    def scores(projection: Any, split: str) -> dict[str, float]:
        q, q_y = queries[split]
        out = {}
        for name, (g, g_y) in galleries.items():
            if projection is None:
                out[name] = _recall1(q, q_y, g, g_y)
            else:
                out[name] = _recall1(
                    apply_projection(q, projection), q_y, apply_projection(g, projection), g_y
                )
        return out

    extracted = sum(len(f[0]) for f in feats.values())
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "model": f"{args.backbone} {args.image_size} px, avg-pooled, weights {args.weights}",
        "extraction": {
            "images": extracted,
            "seconds": round(sum(f[2] for f in feats.values()), 1),
        },
        "fit_on": f"catalog: {len(train)} train photos + {len(iconic)} catalog images",
        "raw": {split: scores(None, split) for split in queries},
        "compact": [],
    }
    dims = [int(d) for d in args.dims.split(",")]
    for dim in dims:
        for center in (False, True):
            started = time.perf_counter()
            projection = fit_projection(catalog, dim, center=center)
            row = {
                "dim": projection.out_dim,
                "centered": center,
                "explained": round(projection.explained, 4),
                "fit_s": round(time.perf_counter() - started, 2),
                **{split: scores(projection, split) for split in queries},
            }
            results["compact"].append(row)
            print(json.dumps(row), flush=True)

    # The choice on val: the centring whose worse loss over both galleries (at the first dim) is smaller.
    def worst_val_loss(row: dict[str, Any]) -> float:
        return min(row["val"][g] - results["raw"]["val"][g] for g in galleries)

    first = [r for r in results["compact"] if r["dim"] == min(dims[0], len(catalog))]
    chosen = max(first, key=worst_val_loss)
    results["chosen_on_val"] = {"dim": chosen["dim"], "centered": chosen["centered"]}

    # How many catalog photos a fit needs: samples drawn one per product first, the chosen centring.
    sweep = []
    for cap in (100, 256, 500, 1000, 2000, len(catalog)):
        picked = sample_per_product(catalog_y, cap, seed=0)
        projection = fit_projection(catalog[picked], dims[0], center=chosen["centered"])
        sweep.append(
            {"samples": int(len(picked)), "dim": projection.out_dim, "val": scores(projection, "val")}
        )
        print(json.dumps(sweep[-1]), flush=True)
    results["samples_sweep_val"] = sweep

    # A one-photo shop: the only catalog is the 81 web-shop images (out_dim is then 81).
    results["fit_on_catalog_images_only"] = []
    for center in (False, True):
        projection = fit_projection(iconic, dims[0], center=center)
        row = {"dim": projection.out_dim, "centered": center, **{s: scores(projection, s) for s in queries}}
        results["fit_on_catalog_images_only"].append(row)
        print("catalog images only:", json.dumps(row), flush=True)
    # The same choice for such a catalog, on val (search/services/compact.py centres by catalog kind).
    best = max(results["fit_on_catalog_images_only"], key=lambda r: r["val"]["one photo"])
    results["chosen_on_val_catalog_images_only"] = {"centered": best["centered"]}

    if args.time_export:
        results["export_timing"] = _time_export(data, args, chosen["centered"], dims[0])
        print(json.dumps(results["export_timing"]), flush=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\n{'vectors':<24} {'val shop':>9} {'val one':>8} {'test shop':>10} {'test one':>9}")
    print(
        f"{'raw 1280':<24} {results['raw']['val']['shop photos']:>9.3f} {results['raw']['val']['one photo']:>8.3f} "
        f"{results['raw']['test']['shop photos']:>10.3f} {results['raw']['test']['one photo']:>9.3f}"
    )
    for r in results["compact"]:
        name = f"PCA {r['dim']} {'centred' if r['centered'] else 'uncentred'}"
        print(
            f"{name:<24} {r['val']['shop photos']:>9.3f} {r['val']['one photo']:>8.3f} "
            f"{r['test']['shop photos']:>10.3f} {r['test']['one photo']:>9.3f}"
        )
    print(f"chosen on val: {results['chosen_on_val']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
