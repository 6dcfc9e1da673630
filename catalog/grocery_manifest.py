"""The Grocery Store Dataset as a demo catalog manifest for ``import_catalog``.

Product = fine class, its catalog image = the iconic image (listed first), category = coarse class.
Image paths are relative to the dataset's folder (``dataset_dir``): import with
``import_catalog MANIFEST --images-root <that folder>``, since a manifest may only name images inside
the folder it is read from.
The dataset has no prices; the manifest gives each product a stable demo price derived from its
class id and says so in ``attributes.price_source``. The dataset's layout is read by ml.grocery.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ml.grocery import dataset_dir, read_classes, read_split


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
                "images": list(images),
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(classes)
