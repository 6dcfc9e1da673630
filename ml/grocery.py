"""The Grocery Store Dataset (Klasson et al., WACV 2019; MIT license): the one reader of its layout.

A checkout holds ``dataset/classes.csv`` (fine class name and id, coarse class name and id, the iconic
catalog image and the description file of each class) and ``dataset/{train,val,test}.txt`` (one
``path, fine id, coarse id`` per photo). Product = fine class. Used by training and benchmarks
(``split_items``, ``iconic_items``) and by the demo catalog (catalog/grocery_manifest.py).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "val", "test")
Item = tuple[str, str]  # (absolute image path, product label): ml.data's item for a file source


class GroceryLayoutError(ValueError):
    """The folder is not a Grocery Store Dataset checkout, or a split is unknown."""


@dataclass(frozen=True)
class GroceryClass:
    class_id: int
    name: str
    coarse_id: int
    coarse_name: str
    iconic: str  # relative to dataset/
    description: str  # relative to dataset/


def dataset_dir(root: str | os.PathLike[str]) -> Path:
    """Accept either the checkout root or its dataset/ folder."""
    base = Path(root)
    for candidate in (base / "dataset", base):
        if (candidate / "classes.csv").is_file():
            return candidate
    raise GroceryLayoutError(
        f"{base} is not a Grocery Store Dataset checkout (no dataset/classes.csv). "
        "Pass the folder that contains dataset/."
    )


def read_classes(root: str | os.PathLike[str]) -> list[GroceryClass]:
    classes = []
    with (dataset_dir(root) / "classes.csv").open(newline="", encoding="utf-8") as handle:
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


def read_split(root: str | os.PathLike[str], split: str) -> list[tuple[str, int]]:
    """(path relative to dataset/, fine class id) for each photo of a split."""
    if split not in SPLITS:
        raise GroceryLayoutError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    split_file = dataset_dir(root) / f"{split}.txt"
    if not split_file.is_file():
        raise GroceryLayoutError(f"no split file {split_file}")
    rows = []
    for line in split_file.read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0]:
            rows.append((parts[0], int(parts[1])))
    return rows


def split_items(root: str | os.PathLike[str], split: str) -> list[Item]:
    """Photos of one split as (absolute path, product name) items."""
    dataset = dataset_dir(root)
    names = {c.class_id: c.name for c in read_classes(root)}
    return [(str(dataset / rel), names[class_id]) for rel, class_id in read_split(root, split)]


def iconic_items(root: str | os.PathLike[str]) -> list[Item]:
    """The one web-shop ("iconic") catalog image of each product, as (absolute path, product name)."""
    dataset = dataset_dir(root)
    return [(str(dataset / c.iconic), c.name) for c in read_classes(root)]
