"""Reading the pack: photo searches re-ranked by the words on the pack, and search by typed words.

    .venv/bin/python -m bench.text                          # test split, pretrained model, 81 web-shop images
    .venv/bin/python -m bench.text --catalog photos         # + 5 store photos per product in the catalog
    .venv/bin/python -m bench.text --trained DIR            # also an exported trained model (a SavedModel dir)
    .venv/bin/python -m bench.text --train                  # also train one on the catalog here (~30 min)
    .venv/bin/python -m bench.text --calibrate              # VALIDATION split: choose margin and weight
    .venv/bin/python -m bench.text --limit 40               # a small run: 40 photos per group

The catalog: one product per Grocery class (title = the class name, description = the dataset's
product description, category = its group: packages, fruit or vegetables) with its web-shop image
(and with ``--catalog photos`` some train-split store photos), imported through the real write path
into a private embedded install (bench.query's set-up); every catalog image's text is read (the
ingest's reader, ml.ocr's catalog profile) and the text index written.

Photo searches: each test photo through POST /api/v1/search/ twice, with SEARCH_TEXT_RERANK off (the
visual answer alone) and on, in alternating order; Recall@1 by group, and the latency of the searches
that read their photo and of those that did not, the latter also paired with the same photos'
searches with re-ranking off (wall time of the request, in-process). Per model: the pretrained backbone
(as a new shop has it) and, with --trained/--train, a trained one.

Text queries: each product's name as a shopper types it (lower case), with one typo (a letter
dropped, doubled, swapped with the next or replaced; seeded), and partial (its last word alone),
through ``q``; the right product in the top 1 and top 5.

``--calibrate`` runs on the VALIDATION split instead: each photo's visual top 10, the words read on it
(generous budget) and its candidates' text scores are recorded once, then the re-ranking
(search.services.text_rerank.combine, the service's own function) is replayed for a grid of margins,
weights and candidate counts; the best on validation is printed for the settings (per model: the
pretrained model's SEARCH_TEXT_MARGIN / _WEIGHT / _CANDIDATES, a trained one's ..._TRAINED).

Writes var/bench/text.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inputs import DEFAULT_DATA, REPO, grocery_group, missing_inputs, weights_value

CALIBRATION_DEPTH = 10
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 1.0, float("inf"))
WEIGHTS = (0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
CANDIDATES = (3, 5, 8, 10)


def _percentiles(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0, "p50": None, "p95": None}
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(samples), "p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


def _photos(data: Path, split: str, limit: int | None, seed: int) -> list[tuple[str, str, str]]:
    """(path, product name, group) of a split, ``limit`` per group at most (a seeded sample)."""
    from ml.grocery import split_items

    by_group: dict[str, list[tuple[str, str, str]]] = {}
    for path, name in split_items(data, split):
        group = grocery_group(path)
        by_group.setdefault(group, []).append((path, name, group))
    chosen = []
    for group in sorted(by_group):
        items = by_group[group]
        if limit is not None and len(items) > limit:
            items = sorted(random.Random(f"{seed}-{group}").sample(items, limit))
        chosen.extend(items)
    return chosen


def _import_catalog(data: Path, photos_per_product: int, seed: int) -> dict[str, int]:
    """One product per class, its web-shop image and ``photos_per_product`` train photos; name -> id."""
    from catalog import services
    from catalog.models import IndexStatus, ProductImage
    from ml.grocery import dataset_dir, read_classes, split_items

    dataset = dataset_dir(data)
    train: dict[str, list[str]] = {}
    for path, name in split_items(data, "train"):
        train.setdefault(name, []).append(path)
    rng = random.Random(seed)
    ids = {}
    for c in read_classes(data):
        description_file = dataset / c.description
        description = (
            description_file.read_text(encoding="utf-8", errors="replace")
            if description_file.is_file()
            else ""
        )
        group = grocery_group(c.iconic)
        product = services.product_create(
            sku=c.name, title=c.name.replace("-", " "), category=group, price="1.00", description=description
        )
        paths = [str(dataset / c.iconic)]
        extra = train.get(c.name, [])
        paths += sorted(rng.sample(extra, min(photos_per_product, len(extra))))
        for path in paths:
            services.product_image_add(
                product=product, data=Path(path).read_bytes(), original_name=Path(path).name
            )
        ids[c.name] = product.pk
    failed = ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).count()
    if failed:
        raise SystemExit(f"{failed} catalog images failed to index")
    return ids


def _read_catalog_text() -> dict[str, Any]:
    """Every catalog image's words, as the ingest's reader records them, then the text index."""
    from catalog.models import ProductImage
    from search.services.image_text import images_text_read
    from search.services.text_index import rebuild_text_index

    ids = [str(pk) for pk in ProductImage.objects.order_by("pk").values_list("pk", flat=True)]
    outcome = images_text_read(ids, force=True)
    rebuild_text_index()
    return {"images": len(ids), "with_words": outcome.with_words, "failed": len(outcome.failed),
            "seconds": round(outcome.seconds, 1)}  # fmt: skip


def _search(client: Any, path: str, limit: int) -> tuple[dict[str, Any], float]:
    with open(path, "rb") as handle:
        started = time.perf_counter()
        answer = client.post("/api/v1/search/", {"image": handle, "limit": limit})
        wall = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"search of {path} answered {answer.status_code}: {answer.content[:200]!r}")
    return answer.json(), wall


def _photo_searches(client: Any, photos: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Recall@1 by group without and with the words on the pack, and the latencies."""
    from django.test import override_settings

    rows: dict[str, list[dict[str, Any]]] = {"visual": [], "text": []}
    for on in (False, True):  # the first search builds the engines: not a shopper's wait
        with override_settings(SEARCH_TEXT_RERANK=on):
            _search(client, photos[0][0], 1)
    started = time.perf_counter()
    for n, (path, name, group) in enumerate(photos, 1):
        if n % 250 == 0:
            print(f"  {n}/{len(photos)} photos, {time.perf_counter() - started:.0f} s", flush=True)
        # Each photo twice, re-ranking off and on, in alternating order: load from anything else hits
        # both alike, and the latency of a search that did not read is compared with the same photo's
        # search with re-ranking off.
        for mode in ("visual", "text") if n % 2 else ("text", "visual"):
            with override_settings(SEARCH_TEXT_RERANK=mode == "text"):
                body, wall = _search(client, path, 5)
            top = body["results"][0]["product"]["sku"] if body["results"] else None
            rows[mode].append({"group": group, "hit": top == name, "wall_ms": wall,
                               "tried": body["timings_ms"].get("read_text", 0.0) > 0,
                               "read": body.get("words_read") is not None,
                               "words": bool(body.get("words_read")),
                               "reranked": bool(body.get("reranked_by_text")),
                               "read_ms": body["timings_ms"].get("read_text", 0.0)})  # fmt: skip
    # The same photos' two searches, for those that did not read: what turning re-ranking on costs a
    # search that does not need the words.
    pairs = [
        (t["wall_ms"], v["wall_ms"])
        for t, v in zip(rows["text"], rows["visual"], strict=True)
        if not t["tried"]
    ]
    groups = sorted({g for _, _, g in photos})
    recall: dict[str, dict[str, Any]] = {}
    for group in [*groups, "all"]:
        for mode in rows:
            chosen = [r for r in rows[mode] if group in ("all", r["group"])]
            recall.setdefault(group, {"photos": len(chosen)})[mode] = (
                round(sum(r["hit"] for r in chosen) / len(chosen), 4) if chosen else None
            )
        gain = recall[group]
        gain["gain"] = round(gain["text"] - gain["visual"], 4) if gain["visual"] is not None else None
    text_rows = rows["text"]
    fixed = sum(1 for a, b in zip(rows["visual"], text_rows, strict=True) if b["hit"] and not a["hit"])
    broken = sum(1 for a, b in zip(rows["visual"], text_rows, strict=True) if a["hit"] and not b["hit"])
    return {
        "recall@1": recall,
        "tried": sum(r["tried"] for r in text_rows),  # not clear-cut: sent to the reader
        "read": sum(r["read"] for r in text_rows),  # read within the budget
        "with_words": sum(r["words"] for r in text_rows),
        "reranked": sum(r["reranked"] for r in text_rows),
        "fixed": fixed,
        "broken": broken,
        "latency_ms": {
            "reading": _percentiles([r["wall_ms"] for r in text_rows if r["tried"]]),
            "reading_stage": _percentiles([r["read_ms"] for r in text_rows if r["tried"]]),
            "not_reading": _percentiles([r["wall_ms"] for r in text_rows if not r["tried"]]),
            "rerank_off": _percentiles([r["wall_ms"] for r in rows["visual"]]),
            # Paired with "not_reading": the same photos with re-ranking off.
            "not_reading_paired": {
                "off": _percentiles([off for _, off in pairs]),
                "p50_ratio": round(
                    statistics.median(on for on, _ in pairs) / statistics.median(off for _, off in pairs), 3
                )
                if pairs
                else None,
            },
        },
    }


def _typo(word: str, rng: random.Random) -> str:
    """``word`` with one typo: a letter dropped, doubled, swapped with the next, or replaced."""
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)  # shoppers rarely mistype the first letter
    kind = rng.choice(("drop", "double", "swap", "replace"))
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    letters = "abcdefghijklmnopqrstuvwxyz".replace(word[i], "")
    return word[:i] + rng.choice(letters) + word[i + 1 :]


def text_queries(names: list[str], seed: int) -> dict[str, list[tuple[str, str]]]:
    """(query, product name) per kind: the name typed, with one typo (in a word of 4+ letters), partial."""
    rng = random.Random(seed)
    typed, typo, partial = [], [], []
    for name in names:
        words = name.replace("-", " ").lower().split()
        typed.append((" ".join(words), name))
        long_words = [i for i, w in enumerate(words) if len(w) >= 4] or list(range(len(words)))
        i = rng.choice(long_words)
        typo.append((" ".join([*words[:i], _typo(words[i], rng), *words[i + 1 :]]), name))
        partial.append((words[-1], name))
    return {"typed": typed, "one_typo": typo, "partial": partial}


def _text_searches(client: Any, names: list[str], seed: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for kind, queries in text_queries(names, seed).items():
        top1 = top5 = 0
        walls = []
        for q, name in queries:
            started = time.perf_counter()
            answer = client.post("/api/v1/search/", {"q": q, "limit": 5}, format="json")
            walls.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"q={q!r} answered {answer.status_code}: {answer.content[:200]!r}")
            skus = [r["product"]["sku"] for r in answer.json()["results"]]
            top1 += bool(skus) and skus[0] == name
            top5 += name in skus
        report[kind] = {"queries": len(queries), "top1": round(top1 / len(queries), 4),
                        "top5": round(top5 / len(queries), 4), "latency_ms": _percentiles(walls),
                        "examples": [q for q, _ in queries[:3]]}  # fmt: skip
    return report


def _calibration_records(client: Any, photos: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Per validation photo: the visual top 10 (sku, score), the words read, the candidates' text scores."""
    from django.test import override_settings

    from catalog import image_limits
    from ml.preprocess import load_cropped
    from search.services.text_rerank import candidate_text_scores, read_photo
    from search.vector_store import SearchFilter

    records = []
    with override_settings(SEARCH_TEXT_RERANK=False):
        for path, name, group in photos:
            body, _ = _search(client, path, CALIBRATION_DEPTH)
            visual = [(r["product"]["id"], r["score"], r["product"]["sku"]) for r in body["results"]]
            picture = load_cropped(Path(path).read_bytes(), **image_limits.limits())
            words = read_photo(picture, budget_s=10.0)
            text = candidate_text_scores(words, [p for p, _, _ in visual], SearchFilter(active=True))
            records.append({"group": group, "name": name, "visual": visual, "words": words, "text": text})
    return records


def replay(records: list[dict[str, Any]], margin: float, weight: float, k: int) -> dict[str, float]:
    """Recall@1 by group of the re-ranking with these settings, replayed on recorded answers."""
    from search.services.text_rerank import combine

    hits: dict[str, list[bool]] = {}
    for r in records:
        visual = [(p, s) for p, s, _ in r["visual"]]
        sku = {p: n for p, _, n in r["visual"]}
        order = [p for p, _ in visual]
        lead = visual[0][1] - visual[1][1] if len(visual) > 1 else float("inf")
        if lead < margin and r["words"]:
            candidates = visual[:k]
            text = {p: s for p, s in r["text"].items() if p in {c for c, _ in candidates}}
            if text:
                order = combine(candidates, text, weight) + order[k:]
        top = sku.get(order[0]) if order else None
        for group in (r["group"], "all"):
            hits.setdefault(group, []).append(top == r["name"])
    return {g: round(sum(v) / len(v), 4) for g, v in hits.items()}


def calibrate(records: list[dict[str, Any]]) -> dict[str, Any]:
    visual = replay(records, 0.0, 0.0, 2)
    grid = []
    for k in CANDIDATES:
        for margin in MARGINS:
            for weight in WEIGHTS:
                grid.append(
                    {
                        "k": k,
                        "margin": margin,
                        "weight": weight,
                        "recall@1": replay(records, margin, weight, k),
                    }
                )
    # The best overall Recall@1 on validation; ties go to the smaller margin (fewer photos read: less
    # latency), then the smaller weight and fewer candidates.
    best = max(grid, key=lambda g: (g["recall@1"]["all"], -g["margin"], -g["weight"], -g["k"]))
    return {"visual": visual, "best": best, "grid_points": len(grid),
            "top": sorted(grid, key=lambda g: -g["recall@1"]["all"])[:10]}  # fmt: skip


def _register_trained(export_dir: Path) -> Any:
    from django.core.management import call_command

    from bench.feedback import _register

    record = _register(export_dir, "trained", "")
    call_command("reindex", "--model", str(record.version), "--force", verbosity=0)
    return record


def _table(report: dict[str, Any]) -> str:
    lines = []
    for name, model in report["models"].items():
        photos = model.get("photos")
        if photos:
            lines.append(
                f"\n{name} model ({model['kind']} v{model['version']}, embeds with "
                f"{model.get('embeds_with', '?')}): Recall@1 through the API"
            )
            lines.append(f"{'group':<12} {'photos':>6} {'visual':>7} {'+text':>7} {'gain':>7}")
            for group, row in photos["recall@1"].items():
                lines.append(
                    f"{group:<12} {row['photos']:>6} {row['visual']:>7.3f} {row['text']:>7.3f} {row['gain']:>+7.3f}"
                )
            lat = photos["latency_ms"]
            lines.append(
                f"sent to the reader {photos['tried']}, read in budget {photos['read']}, with words "
                f"{photos['with_words']}, re-ranked {photos['reranked']} (fixed {photos['fixed']}, broken "
                f"{photos['broken']}); latency ms p50/p95: reading {lat['reading']['p50']}/{lat['reading']['p95']} "
                f"(reading stage {lat['reading_stage']['p50']}/{lat['reading_stage']['p95']}), not reading "
                f"{lat['not_reading']['p50']}/{lat['not_reading']['p95']}, re-ranking off "
                f"{lat['rerank_off']['p50']}/{lat['rerank_off']['p95']}; the photos that did not read, on/off p50 "
                f"{lat['not_reading']['p50']}/{lat['not_reading_paired']['off']['p50']} "
                f"(ratio {lat['not_reading_paired']['p50_ratio']})"
            )
        if model.get("calibration"):
            c = model["calibration"]
            b = c["best"]
            lines.append(
                f"\n{name}: validation R@1 visual {c['visual']['all']:.3f} -> {b['recall@1']['all']:.3f} with "
                f"margin {b['margin']}, weight {b['weight']}, candidates {b['k']}  ({json.dumps(b['recall@1'])})"
            )
    if report.get("text_queries"):
        lines.append(f"\n{'text query':<12} {'n':>4} {'top1':>6} {'top5':>6}  example")
        for kind, row in report["text_queries"].items():
            lines.append(
                f"{kind:<12} {row['queries']:>4} {row['top1']:>6.3f} {row['top5']:>6.3f}  {row['examples'][0]}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Grocery Store Dataset folder")
    parser.add_argument(
        "--weights", default="imagenet", help="the pretrained backbone's weights: a file or 'imagenet'"
    )
    parser.add_argument("--catalog", choices=["iconic", "photos"], default="iconic",
                        help="iconic: one web-shop image per product; photos: and --photos-per-product store photos")  # fmt: skip
    parser.add_argument("--photos-per-product", type=int, default=5)
    parser.add_argument(
        "--trained", type=Path, default=None, help="an exported trained model (SavedModel dir) to measure too"
    )
    parser.add_argument(
        "--train", action="store_true", help="train a model on the catalog here and measure it too"
    )
    parser.add_argument("--epochs", type=int, default=None, help="with --train (default: TrainConfig's)")
    parser.add_argument(
        "--calibrate", action="store_true", help="validation split: choose margin, weight, candidates"
    )
    parser.add_argument("--limit", type=int, default=None, help="photos per group (a seeded sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "text.json")
    args = parser.parse_args(argv)
    split = "val" if args.calibrate else "test"
    reason = missing_inputs(args.data, args.weights, split)
    if reason:
        print(reason)
        return 0
    photos = _photos(args.data, split, args.limit, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    os.environ["BACKBONE_WEIGHTS"] = weights_value(args.weights)
    # The catalog's text is read here, in order, not by the ingest's background thread.
    os.environ["OCR_ENABLED"] = "false"
    os.environ.setdefault("OCR_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="bench-text-", dir=args.out.parent) as tmp:
        from bench.query import _setup_django  # the benchmarks' one private embedded environment

        _setup_django(Path(tmp))
        from django.conf import settings
        from django.test import Client

        from bench.feedback import train_candidate_model
        from ml.train import machine_description
        from search.embedders import reset_embedders, serving_precision
        from search.services.model_versions import bootstrap_model_ensure
        from search.vector_store import reset_vector_store

        pretrained = bootstrap_model_ensure(weights=os.environ["BACKBONE_WEIGHTS"]).model
        from ml import ocr

        ocr.configure(query_threads=settings.OCR_QUERY_THREADS)
        ocr.query_engine()  # built once per process (about 1 s), before any search is timed
        ids = _import_catalog(
            args.data, args.photos_per_product if args.catalog == "photos" else 0, args.seed
        )
        catalog_text = _read_catalog_text()
        client = Client()
        report: dict[str, Any] = {
            "benchmark": "reading the pack: photo searches re-ranked by text, and text queries (bench/text.py)",
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": machine_description(),
            "cpus": os.cpu_count(),
            "split": split,
            "limit_per_group": args.limit,
            "catalog": {"products": len(ids), "kind": args.catalog, **catalog_text},
            "load_avg_start": os.getloadavg(),
            "settings": {
                k: getattr(settings, k)
                for k in (
                    "SEARCH_TEXT_MARGIN",
                    "SEARCH_TEXT_WEIGHT",
                    "SEARCH_TEXT_CANDIDATES",
                    "SEARCH_TEXT_MARGIN_TRAINED",
                    "SEARCH_TEXT_WEIGHT_TRAINED",
                    "SEARCH_TEXT_CANDIDATES_TRAINED",
                    "SEARCH_TEXT_BUDGET_MS",
                    "OCR_QUERY_THREADS",
                )
            },  # fmt: skip
            "models": {},
        }
        models: list[tuple[str, Any]] = [("pretrained", pretrained)]
        if args.trained is not None:
            models.append(("trained", lambda: _register_trained(args.trained)))
        elif args.train:
            models.append(("trained", lambda: train_candidate_model(
                with_feedback=False, epochs=args.epochs, output=Path(tmp) / "trained").model))  # fmt: skip
        for name, model in models:
            record = model() if callable(model) else model
            # Which file embeds (int8 or float, and why): EMBEDDING_PRECISION=auto decides by the CPU.
            entry: dict[str, Any] = {
                "kind": record.kind,
                "version": record.version,
                "embeds_with": serving_precision(record),
            }
            if args.calibrate:
                records = _calibration_records(client, photos)
                entry["calibration"] = calibrate(records)
                entry["read_with_words"] = sum(bool(r["words"]) for r in records)
                # What was read and matched, per photo (for a look at what the words fix and break).
                entry["records"] = [
                    {"name": r["name"], "group": r["group"], "words": r["words"],
                     "visual": [(n, round(s, 4)) for _, s, n in r["visual"][:5]],
                     "text": {n: round(r["text"][p], 3) for p, _, n in r["visual"] if p in r["text"]}}
                    for r in records
                ]  # fmt: skip
            else:
                entry["photos"] = _photo_searches(client, photos)
            report["models"][name] = entry
            print(f"{name}: done ({time.perf_counter() - started:.0f} s)", flush=True)
        if not args.calibrate:
            report["text_queries"] = _text_searches(client, sorted(ids), args.seed)
        report["wall_s"] = round(time.perf_counter() - started, 1)
        report["load_avg_end"] = os.getloadavg()
        reset_vector_store()
        reset_embedders()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(report))
    print(f"\n{report['wall_s']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
