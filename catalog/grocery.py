"""The Grocery Store Dataset (Klasson et al., WACV 2019) as a catalog manifest.

Product = fine class, its catalog image = the iconic image (listed first), category = coarse class.
The dataset has no prices; the manifest gives each product a stable demo price derived from its
class id and says so in ``attributes.price_source``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class GroceryClass:
    class_id: int
    name: str
    coarse_id: int
    coarse_name: str
    iconic: str  # relative to dataset/
    description: str  # relative to dataset/


class GroceryLayoutError(ValueError):
    pass


def dataset_dir(root: Path) -> Path:
    """Accept either the checkout root or its dataset/ folder."""
    for candidate in (root / "dataset", root):
        if (candidate / "classes.csv").is_file():
            return candidate
    raise GroceryLayoutError(
        f"{root} is not a Grocery Store Dataset checkout (no dataset/classes.csv). "
        "Pass the folder that contains dataset/."
    )


def read_classes(root: Path) -> list[GroceryClass]:
    ds = dataset_dir(root)
    classes = []
    with (ds / "classes.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            if len(row) < 6:
                continue
            classes.append(
                GroceryClass(
                    class_id=int(row[1]),
                    name=row[0].strip(),
                    coarse_id=int(row[3]),
                    coarse_name=row[2].strip(),
                    iconic=row[4].strip().lstrip("/"),
                    description=row[5].strip().lstrip("/"),
                )
            )
    return classes


def read_split(root: Path, split: str) -> list[tuple[str, int]]:
    """(path relative to dataset/, fine class id) for each photo of a split."""
    if split not in SPLITS:
        raise GroceryLayoutError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    ds = dataset_dir(root)
    rows = []
    for line in (ds / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0]:
            rows.append((parts[0], int(parts[1])))
    return rows


def demo_price(class_id: int) -> str:
    digest = hashlib.sha256(f"grocery-{class_id}".encode()).digest()
    return f"{0.49 + (int.from_bytes(digest[:2], 'big') % 900) / 100:.2f}"


def write_manifest(
    root: Path,
    out: Path,
    *,
    photo_split: str | None = "train",
    photos_per_product: int | None = None,
) -> int:
    """Write one JSON line per product; returns the number of products written."""
    ds = dataset_dir(root)
    classes = read_classes(root)
    photos: dict[int, list[str]] = {c.class_id: [] for c in classes}
    if photo_split:
        for rel, class_id in read_split(root, photo_split):
            photos.setdefault(class_id, []).append(rel)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.resolve().parent
    with out.open("w", encoding="utf-8") as handle:
        for c in classes:
            desc_path = ds / c.description
            description = (
                desc_path.read_text(encoding="utf-8", errors="replace").strip() if desc_path.is_file() else ""
            )
            chosen = photos.get(c.class_id, [])
            if photos_per_product is not None:
                chosen = chosen[:photos_per_product]
            images = [c.iconic, *chosen]
            row = {
                "sku": f"GS-{c.class_id:03d}",
                "title": c.name.replace("-", " ").replace("_", " "),
                "description": description,
                "category": c.coarse_name,
                "brand": "",
                "price": demo_price(c.class_id),
                "currency": "SEK",
                "in_stock": True,
                "attributes": {
                    "fine_class_id": c.class_id,
                    "coarse_class_id": c.coarse_id,
                    "department": c.iconic.split("/")[1] if c.iconic.count("/") > 1 else "",
                    "price_source": "synthetic demo price (the dataset has none)",
                },
                "images": [os.path.relpath(ds / rel, base) for rel in images],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(classes)
