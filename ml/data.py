"""Training data: (image source, product label) pairs, decoded once into an in-memory uint8 cache.

A source is a file path or a zero-argument callable returning the image bytes, so the same code
serves a JSONL manifest, the Django catalog (the caller passes loaders that read its storage) and
the Grocery Store benchmark. Photos of the same product are positives for each other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml.disk_array import DiskArray
from ml.preprocess import ImageRejected, load_image, to_model_input

ImageSource = str | os.PathLike[str] | Callable[[], bytes]
Item = tuple[ImageSource, str]

SPILL_EVERY = 64  # decoded photos written to a spill file at a time


class TrainingDataError(ValueError):
    """Training data that cannot be used; the message says in one line what to fix."""


@dataclass
class DecodedImages:
    """Decoded, resized images with integer labels; ``label_names[labels[i]]`` is the product."""

    images: np.ndarray | DiskArray  # uint8 [N, size, size, 3]
    labels: np.ndarray  # int32 [N]
    label_names: list[str]
    skipped: int = 0
    skipped_sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_products(self) -> int:
        return len(np.unique(self.labels))


def read_source(source: ImageSource) -> bytes:
    if callable(source):
        return source()
    return Path(source).read_bytes()


def describe_source(source: ImageSource) -> str:
    return str(source) if not callable(source) else getattr(source, "__name__", repr(source))


def _decode_one(source: ImageSource, size: int) -> np.ndarray | None:
    try:
        image, _ = load_image(read_source(source))
        return to_model_input(image, size)
    except (ImageRejected, OSError):
        return None


def decode_items(
    items: Sequence[Item],
    image_size: int,
    *,
    label_names: Sequence[str] | None = None,
    progress: bool = False,
    desc: str = "decoding",
    threads: int = 2,
    spill: Path | None = None,
) -> DecodedImages:
    """Decode every item with ``ml.preprocess`` at ``image_size``; bad images are skipped and counted.
    With ``spill`` the pixels go to that file (ml/disk_array.py), not memory: a 348 px photo is 363 KB
    decoded, 7 GB for 20,000 of them.

    ``label_names`` fixes the label -> index mapping (pass the training set's so that validation
    labels agree); products not in it get new indices after the given ones.
    """
    names: list[str] = list(label_names) if label_names is not None else []
    index = {name: i for i, name in enumerate(names)}
    # JPEG decoding in Pillow releases the GIL, so two threads keep both cores busy.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        results: Iterable[np.ndarray | None] = pool.map(lambda it: _decode_one(it[0], image_size), items)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(items), desc=desc, unit="img")
        arrays: list[np.ndarray] = []
        disk = DiskArray(spill, (image_size, image_size, 3), np.uint8) if spill is not None else None
        labels: list[int] = []
        skipped: list[str] = []
        for (source, label), arr in zip(items, results, strict=True):
            if arr is None:
                skipped.append(describe_source(source))
                continue
            label = str(label)
            if label not in index:
                index[label] = len(names)
                names.append(label)
            arrays.append(arr)
            labels.append(index[label])
            if disk is not None and len(arrays) >= SPILL_EVERY:
                disk.append(np.stack(arrays))
                arrays.clear()
    images: np.ndarray | DiskArray
    if disk is not None:
        if arrays:
            disk.append(np.stack(arrays))
        images = disk
    else:
        images = np.stack(arrays) if arrays else np.zeros((0, image_size, image_size, 3), np.uint8)
    return DecodedImages(
        images=images,
        labels=np.asarray(labels, dtype=np.int32),
        label_names=names,
        skipped=len(skipped),
        skipped_sources=skipped,
    )


def check_trainable(items: Sequence[Item], what: str = "training data") -> None:
    """Raise TrainingDataError for empty data or fewer than two products."""
    if not items:
        raise TrainingDataError(f"{what} is empty; add products with at least one image each")
    products = {str(label) for _, label in items}
    if len(products) < 2:
        raise TrainingDataError(
            f"{what} has {len(products)} product; metric learning needs at least two products"
        )


def read_manifest(path: str | os.PathLike[str]) -> list[Item]:
    """Read a JSONL manifest: one ``{"sku": ..., "images": [paths relative to the manifest]}`` per line."""
    manifest = Path(path)
    if not manifest.is_file():
        raise TrainingDataError(f"manifest not found: {manifest}; pass --manifest FILE.jsonl")
    root = manifest.parent
    items: list[Item] = []
    with manifest.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                sku = str(row["sku"])
                images = row["images"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise TrainingDataError(
                    f"{manifest}:{lineno}: expected a JSON object with 'sku' and 'images' ({exc})"
                ) from exc
            if isinstance(images, str):
                images = [images]
            items.extend((str(root / img), sku) for img in images)
    return items


def write_manifest(path: str | os.PathLike[str], items: Sequence[tuple[str, str]]) -> None:
    """Write items (paths relative to the manifest's folder) grouped by product, one product a line."""
    grouped: dict[str, list[str]] = {}
    for source, label in items:
        grouped.setdefault(str(label), []).append(str(source))
    with Path(path).open("w", encoding="utf-8") as fh:
        for sku, images in grouped.items():
            fh.write(json.dumps({"sku": sku, "images": images}) + "\n")


# --- splits -----------------------------------------------------------------------------------


def split_items(
    items: Sequence[Item],
    *,
    val_fraction: float = 0.1,
    split_by: str = "photo",
    seed: int = 0,
) -> tuple[list[Item], list[Item]]:
    """Split into (train, val).

    ``split_by="photo"`` (default) holds out photos but keeps every product in training, as a shop
    re-training on its own catalog would; a product's only photo stays in training.
    ``split_by="product"`` holds out whole products, to measure generalisation to unseen products.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, (_, label) in enumerate(items):
        by_label.setdefault(str(label), []).append(i)
    val_idx: set[int] = set()
    if split_by == "photo":
        for indices in by_label.values():
            n_val = int(round(len(indices) * val_fraction))
            n_val = min(n_val, len(indices) - 1)  # at least one photo of each product trains
            if n_val > 0:
                val_idx.update(rng.choice(indices, size=n_val, replace=False).tolist())
    elif split_by == "product":
        labels = sorted(by_label)
        n_val = max(2, int(round(len(labels) * val_fraction)))
        if len(labels) - n_val < 2:
            raise TrainingDataError(
                f"split_by='product' needs at least {n_val + 2} products; there are {len(labels)}"
            )
        for label in rng.choice(labels, size=n_val, replace=False).tolist():
            val_idx.update(by_label[label])
    else:
        raise ValueError(f"split_by must be 'photo' or 'product', not {split_by!r}")
    train = [it for i, it in enumerate(items) if i not in val_idx]
    val = [it for i, it in enumerate(items) if i in val_idx]
    return train, val
