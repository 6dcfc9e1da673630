"""Restore drill on the Grocery Store catalog: back up an install, restore it into an empty one, and
ask both the same 100 photo queries; the top 10 must be identical.

    .venv/bin/python -m bench.restore_drill --out var/bench/restore_drill.json          # whole catalog
    .venv/bin/python -m bench.restore_drill --limit 5 --photos-per-product 2 --queries 10  # a check run

Everything runs through the operator's commands, each in its own process, on two private embedded
installs (SQLite, media, models and Qdrant Edge under a temporary folder in var/bench/):

  install A: ``migrate``; ``make_grocery_manifest`` (the train split's photos after each product's web-shop
  image; ``--limit`` keeps the first N products); ``import_catalog`` (exports the pretrained bootstrap
  model on its first line and indexes every image); the queries; ``backup``.
  install B (empty: ``migrate`` only): ``restore``; the same queries.
  With ``--recipe`` a third install restores a ``backup --vectors recipe`` archive (every image
  re-embedded) and is queried too.

Queries: ``--queries`` photos of the test split, evenly spaced over it, through POST /api/v1/search/
(limit 10) in a child process of each install. Writes JSON (``--out``) and prints a summary; exits 1
when any top 10 differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inputs import (
    DEFAULT_DATA,
    DEFAULT_WEIGHTS,
    EXTERNAL_SERVICES,
    REPO,
    embedded_settings,
    missing_inputs,
)
from bench.inputs import weights_value as _weights_value

TOP = 10


def _env(workdir: Path, weights: str) -> dict[str, str]:
    workdir.mkdir(parents=True, exist_ok=True)  # the SQLite file's folder
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_SERVICES}
    env.update(embedded_settings(workdir))
    env.update(
        BACKBONE_WEIGHTS=_weights_value(weights),
        SEARCH_LOG_PHOTOS_DIR=str(workdir / "search-photos"),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run one manage.py command; its wall time and output (a failure ends the drill with its output)."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    print(f"  manage.py {args[0]}: {seconds:.1f} s", flush=True)
    return seconds, proc.stdout


def _queries(env: dict[str, str], photos: list[str], out: Path) -> list[list[list[Any]]]:
    spec = out.with_suffix(".photos.json")
    spec.write_text(json.dumps(photos))
    started = time.monotonic()
    cmd = [sys.executable, "-m", "bench.restore_drill", "--child-queries", str(spec), "--out", str(out)]
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    print(f"  {len(photos)} queries: {time.monotonic() - started:.1f} s", flush=True)
    return json.loads(out.read_text())


def child_queries(photos_file: Path, out: Path) -> None:
    """In an install's own process: the top 10 (image id, product id, score) of each photo."""
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    client = APIClient()
    answers = []
    for path in json.loads(photos_file.read_text()):
        photo = SimpleUploadedFile(Path(path).name, Path(path).read_bytes(), content_type="image/jpeg")
        response = client.post("/api/v1/search/", {"image": photo, "limit": TOP}, format="multipart")
        if response.status_code != 200:
            raise SystemExit(f"search answered {response.status_code}: {response.content[:300]!r}")
        answers.append([[r["image_id"], r["product"]["id"], r["score"]] for r in response.json()["results"]])
    out.write_text(json.dumps(answers))


def _compare(before: list[list[list[Any]]], after: list[list[list[Any]]]) -> dict[str, Any]:
    identical, worst = 0, 0.0
    differing = []
    for n, (a, b) in enumerate(zip(before, after, strict=True)):
        same = [(i, p) for i, p, _ in a] == [(i, p) for i, p, _ in b]
        if same:
            identical += 1
            worst = max([worst, *(abs(x[2] - y[2]) for x, y in zip(a, b, strict=True))])
        else:
            differing.append(n)
    return {
        "identical_top10": identical,
        "queries": len(before),
        "differing": differing,
        "max_score_delta": worst,
    }


def _restore_and_compare(
    workdir: Path, weights: str, archive: Path, photos: list[str], before: list[list[list[Any]]]
) -> dict[str, Any]:
    """An empty install at ``workdir``: migrate, restore ``archive``, ask the photos; how it compares."""
    env = _env(workdir, weights)
    _manage(env, "migrate", "--verbosity", "0")
    seconds, log = _manage(env, "restore", str(archive))
    after = _queries(env, photos, workdir.with_name(f"{workdir.name}-queries.json"))
    return {"seconds": round(seconds, 1), "log": log.splitlines(), **_compare(before, after)}


def _bytes_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="Grocery Store Dataset folder")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="backbone weights: 'imagenet' or a file")
    parser.add_argument("--limit", type=int, default=None, help="only the first N products (default: all 81)")
    parser.add_argument(
        "--photos-per-product", type=int, default=None, help="train photos per product (default: all)"
    )
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument(
        "--recipe", action="store_true", help="also restore a recipe-only archive (re-embeds)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "restore_drill.json")
    parser.add_argument("--keep", action="store_true", help="keep the installs' folder")
    parser.add_argument("--child-queries", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_queries:
        child_queries(args.child_queries, args.out)
        return 0
    data = Path(args.data)
    skip = missing_inputs(data, args.weights, "test")
    if skip:
        print(skip)
        return 0
    from ml.grocery import read_split

    tests = read_split(data, "test")
    step = max(1, len(tests) // args.queries)
    photos = [str((data / "dataset" / rel).resolve()) for rel, _ in tests[::step][: args.queries]]

    (REPO / "var" / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="restore-drill-", dir=REPO / "var" / "bench"))
    result: dict[str, Any] = {
        "benchmark": "restore_drill",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "limit": args.limit,
        "photos_per_product": args.photos_per_product,
    }
    try:
        source = _env(root / "a", args.weights)
        print("install A: import the catalog, query, back up", flush=True)
        _manage(source, "migrate", "--verbosity", "0")
        manifest = root / "a" / "manifest.jsonl"
        extra = (
            ["--photos-per-product", str(args.photos_per_product)]
            if args.photos_per_product is not None
            else []
        )
        _manage(source, "make_grocery_manifest", str(data), "--out", str(manifest), *extra)
        if args.limit is not None:
            lines = manifest.read_text().splitlines()[: args.limit]
            manifest.write_text("\n".join(lines) + "\n")
        import_s, _ = _manage(source, "import_catalog", str(manifest), "--images-root", str(data / "dataset"))
        before = _queries(source, photos, root / "a-queries.json")
        archive = root / "drill.tar"
        backup_s, backup_log = _manage(source, "backup", "--out", str(archive))
        result["catalog"] = {"import_s": round(import_s, 1), "media_bytes": _bytes_of(root / "a" / "media")}
        result["backup"] = {
            "seconds": round(backup_s, 1),
            "bytes": archive.stat().st_size,
            "log": backup_log.splitlines(),
        }

        print("install B (empty): restore, query", flush=True)
        result["restore"] = _restore_and_compare(root / "b", args.weights, archive, photos, before)

        if args.recipe:
            recipe = root / "recipe.tar"
            recipe_backup_s, _ = _manage(source, "backup", "--out", str(recipe), "--vectors", "recipe")
            print("install C (empty): restore the recipe-only archive, query", flush=True)
            result["restore_recipe"] = {
                "backup_seconds": round(recipe_backup_s, 1),
                "bytes": recipe.stat().st_size,
                **_restore_and_compare(root / "c", args.weights, recipe, photos, before),
            }
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    runs = [result["restore"]] + ([result["restore_recipe"]] if "restore_recipe" in result else [])
    print(result["backup"]["log"][-1])
    for run in runs:
        print(run["log"][-1])
        print(
            f"identical top 10: {run['identical_top10']}/{run['queries']} (largest score change {run['max_score_delta']:.2g})"
        )
    print(f"wrote {args.out}")
    return 0 if all(not run["differing"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
