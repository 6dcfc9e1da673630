"""Compact pretrained vectors: Recall@1 of the raw 1280-d features against PCA and learned whitening
to 256 / 128 dims.

    .venv/bin/python -m bench.compact --out var/bench/compact.json

The pretrained model (BOOTSTRAP_BACKBONE at BOOTSTRAP_IMAGE_SIZE, average-pooled, ImageNet weights)
embeds the Grocery Store photos once; the features are cached under var/bench/compact-features/ so
reruns take seconds. The projection is fitted as the platform fits it (ml/projection.py, samples
drawn by ``sample_per_product``) on the shop's catalog only: the train photos and the 81 web-shop
images. Queries are the val photos (which choose centred or not) and the test photos (reported once);
galleries are "shop photos" (train photos + catalog images) and "one photo" (the 81 catalog images).
A sample-size sweep on val shows how many catalog photos a fit needs (BOOTSTRAP_COMPACT_MIN_PHOTOS).

Learned whitening (ml/projection.py::fit_whitening) is fitted as the platform fits it: on the sample
the platform embeds (``sample_in_pairs``, ``BOOTSTRAP_COMPACT_MAX_PHOTOS`` photos: ``--cap``), paired
by product. Every ridge and dimension candidate is scored on val only; the candidate val picks (best
val Recall@1 on shop photos) is the only one measured on test. Then the held-out check: fitted on the
catalog photos of half the products, measured on the other half's queries against the other half's
gallery (several random halves), and a sweep of how many products with pairs a fit needs (val).
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


def _time_export(data: Path, args: Any, ridge: float, dim: int) -> dict[str, Any]:
    """What the bootstrap does on a catalog at the photo cap: decode and embed 2,000 photos with the raw
    model (drawn as the platform draws them), fit the learned whitening, export the compact model
    (SavedModel + model.tflite, both verified against the Keras model)."""
    import tempfile

    from ml.data import decode_items
    from ml.export import export_saved_model
    from ml.grocery import iconic_items, split_items
    from ml.model import build_embedding_model, with_projection
    from ml.projection import fit_whitening, sample_in_pairs
    from ml.train import embed_images
    from ml.train_args import parse_weights

    items = split_items(data, "train") + iconic_items(data)
    products = [name for _, name in items]
    picked = sample_in_pairs(products, args.cap, seed=0)
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
    projection = fit_whitening(np.concatenate(features), [products[i] for i in picked], dim, ridge=ridge)
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


def _leading(projection: Any, dim: int) -> Any:
    """The first ``dim`` columns of a whitening: exactly what a fit at ``dim`` gives (the rotation is
    the same and ordered by variance), so each ridge is fitted once for every dimension."""
    from dataclasses import replace

    dim = min(dim, projection.out_dim)
    return replace(projection, matrix=projection.matrix[:, :dim], bias=projection.bias[:dim])


def _whitening(
    args: Any, feats: dict[str, Any], galleries: dict, queries: dict, scores: Any, results: dict
) -> dict:
    """Learned whitening: every candidate on val (the whole catalog, and held-out halves), the chosen
    one on test once, and how many products with pairs a fit needs (val)."""
    from ml.projection import apply_projection, fit_projection, fit_whitening, sample_in_pairs

    (train, train_y, _), (iconic, iconic_y, _) = feats["train"], feats["iconic"]
    catalog, catalog_y = galleries["shop photos"]
    picked = sample_in_pairs(catalog_y, args.cap, seed=0)
    fit_x, fit_y = catalog[picked], catalog_y[picked]
    dims = sorted({int(d) for d in args.dims.split(",")}, reverse=True)
    ridges = [float(r) for r in args.ridges.split(",")]
    names = np.unique(catalog_y)
    pca_center = results["chosen_on_val"]["centered"]
    out: dict[str, Any] = {"fit_on": f"{len(picked)} catalog photos (sample_in_pairs, cap {args.cap})"}

    # Held out: fit on half the products' catalog photos, score the other half's queries against the
    # other half's gallery. The same halves for every candidate.
    halves = []
    for seed in range(args.halves):
        fit_products = np.random.default_rng(seed).permutation(names)[: len(names) // 2]
        fit_mask = np.isin(catalog_y, fit_products)
        halves.append((seed, fit_products, catalog[fit_mask], catalog_y[fit_mask]))

    def held_out(projection_for: Any, split: str) -> dict[str, float]:
        """Mean over the halves of R@1 on the held-out products; ``projection_for(x, y)`` fits."""
        q, q_y = queries[split]
        sums: dict[str, list[float]] = {g: [] for g in galleries}
        for _, fit_products, x, y in halves:
            projection = projection_for(x, y)
            q_mask = ~np.isin(q_y, fit_products)
            for gname, (g, g_y) in galleries.items():
                g_mask = ~np.isin(g_y, fit_products)
                qq, gg = q[q_mask], g[g_mask]
                if projection is not None:
                    qq, gg = apply_projection(qq, projection), apply_projection(gg, projection)
                sums[gname].append(_recall1(qq, q_y[q_mask], gg, g_y[g_mask]))
        return {g: round(float(np.mean(v)), 4) for g, v in sums.items()}

    out["held_out_raw_val"] = held_out(lambda x, y: None, "val")
    out["held_out_pca_val"] = held_out(lambda x, y: fit_projection(x, dims[-1], center=pca_center), "val")
    print("held-out raw / PCA (val):", out["held_out_raw_val"], out["held_out_pca_val"], flush=True)
    candidates = []
    for ridge in ridges:
        started = time.perf_counter()
        full = fit_whitening(fit_x, fit_y, dims[0], ridge=ridge)
        fit_s = round(time.perf_counter() - started, 2)
        fitted_halves = [fit_whitening(x, y, dims[0], ridge=ridge) for _, _, x, y in halves]
        for dim in dims:
            cache = iter(fitted_halves)
            row = {
                "ridge": ridge,
                "dim": _leading(full, dim).out_dim,
                "pairs": full.pairs,
                "fit_s": fit_s,
                "val": scores(_leading(full, dim), "val"),
                "held_out_val": held_out(lambda x, y, c=cache, d=dim: _leading(next(c), d), "val"),
            }
            candidates.append(row)
            print("whitening:", json.dumps(row), flush=True)
    out["candidates"] = candidates

    # The choice on val: the best whole-catalog R@1 on shop photos among the candidates that do not
    # lose on held-out products (either gallery); if none, the one that loses least there.
    raw_held = out["held_out_raw_val"]

    def held_loss(row: dict[str, Any]) -> float:
        return min(row["held_out_val"][g] - raw_held[g] for g in galleries)

    safe = [r for r in candidates if held_loss(r) >= 0]
    chosen = (
        max(safe, key=lambda r: (r["val"]["shop photos"], r["val"]["one photo"]))
        if safe
        else max(candidates, key=held_loss)
    )
    out["chosen_on_val"] = {"ridge": chosen["ridge"], "dim": chosen["dim"], "held_out_safe": bool(safe)}
    best = fit_whitening(fit_x, fit_y, chosen["dim"], ridge=chosen["ridge"])
    out["test_of_chosen"] = scores(best, "test")

    def whiten(x: np.ndarray, y: np.ndarray) -> Any:
        return fit_whitening(x, y, chosen["dim"], ridge=chosen["ridge"])

    out["held_out_test"] = {
        "raw": held_out(lambda x, y: None, "test"),
        "pca": held_out(lambda x, y: fit_projection(x, chosen["dim"], center=pca_center), "test"),
        "whitening": held_out(whiten, "test"),
    }
    print("chosen on val, test once:", json.dumps(out["test_of_chosen"]), json.dumps(out["held_out_test"]))

    # How many products with pairs a fit needs: the 81 catalog images of every product plus the train
    # photos of only k products (the rest have one photo each); val, the chosen ridge and dim, beside
    # the PCA the platform would fit on the same photos.
    sweep = []
    for k in (2, 5, 10, 20, 40, len(names)):
        paired = np.random.default_rng(0).permutation(names)[:k]
        mask = np.isin(train_y, paired)
        x = np.concatenate([iconic, train[mask]])
        y = np.concatenate([iconic_y, train_y[mask]])
        projection = whiten(x, y)
        pca = fit_projection(x, chosen["dim"], center=len(x) >= 1.5 * len(names))
        sweep.append(
            {
                "paired_products": k,
                "samples": len(x),
                "pairs": projection.pairs,
                "val": scores(projection, "val"),
                "pca_val": scores(pca, "val"),
            }
        )
        print("paired-products sweep:", json.dumps(sweep[-1]), flush=True)
    out["paired_products_sweep_val"] = sweep
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Grocery Store Dataset folder")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=348)
    parser.add_argument("--dims", default="256,128")
    parser.add_argument("--ridges", default="0.01,0.03,0.1,0.3,1.0", help="learned whitening candidates")
    parser.add_argument("--cap", type=int, default=2000, help="photos a whitening fit samples (MAX_PHOTOS)")
    parser.add_argument("--halves", type=int, default=5, help="random product halves for the held-out check")
    parser.add_argument("--cache", default=str(REPO / "var" / "bench" / "compact-features"))
    parser.add_argument("--out", default=str(REPO / "var" / "bench" / "compact.json"))
    parser.add_argument(
        "--time-export",
        action="store_true",
        help="also embed --cap catalog photos with the raw model, fit the chosen whitening, and export "
        "the compact model (timed)",
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

    results["whitening"] = _whitening(args, feats, galleries, queries, scores, results)

    if args.time_export:
        w = results["whitening"]["chosen_on_val"]
        results["export_timing"] = _time_export(data, args, w["ridge"], w["dim"])
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
    w = results["whitening"]
    print(f"\n{'learned whitening':<24} {'val shop':>9} {'val one':>8} {'held-out val shop':>18} {'one':>6}")
    raw_held = w["held_out_raw_val"]
    print(
        f"{'raw (held-out)':<24} {'':>9} {'':>8} {raw_held['shop photos']:>18.3f} {raw_held['one photo']:>6.3f}"
    )
    for r in w["candidates"]:
        name = f"ridge {r['ridge']:g}, {r['dim']}-d"
        print(
            f"{name:<24} {r['val']['shop photos']:>9.3f} {r['val']['one photo']:>8.3f} "
            f"{r['held_out_val']['shop photos']:>18.3f} {r['held_out_val']['one photo']:>6.3f}"
        )
    c = w["chosen_on_val"]
    print(
        f"chosen on val: ridge {c['ridge']:g}, {c['dim']}-d; test (measured once): "
        f"shop photos {w['test_of_chosen']['shop photos']:.3f}, one photo {w['test_of_chosen']['one photo']:.3f}"
    )
    h = w["held_out_test"]
    print(
        f"held-out halves (test, mean of {args.halves}): "
        + ", ".join(
            f"{g}: raw {h['raw'][g]:.3f} PCA {h['pca'][g]:.3f} whitened {h['whitening'][g]:.3f}"
            for g in galleries
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
