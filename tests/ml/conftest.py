"""Tiny generated product photos: each product is a colour and a shape, each photo a jittered view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

PRODUCTS = {
    "red-circle": ((220, 30, 30), "ellipse"),
    "green-square": ((30, 180, 40), "rectangle"),
    "blue-triangle": ((30, 60, 220), "triangle"),
    "yellow-bar": ((230, 210, 20), "bar"),
}


def draw_product(
    colour: tuple[int, int, int], shape: str, rng: np.random.Generator, size: int = 48
) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(200, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    off = rng.integers(-4, 5, size=2)
    lo, hi = 10 + int(off[0]), size - 10 + int(off[1])
    jitter = tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in colour)
    if shape == "ellipse":
        draw.ellipse((lo, lo, hi, hi), fill=jitter)
    elif shape == "rectangle":
        draw.rectangle((lo, lo, hi, hi), fill=jitter)
    elif shape == "triangle":
        draw.polygon([(lo, hi), (hi, hi), ((lo + hi) // 2, lo)], fill=jitter)
    else:
        draw.rectangle((lo, size // 2 - 5, hi, size // 2 + 5), fill=jitter)
    return image


@pytest.fixture(scope="session")
def product_photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]]]:
    """(folder, [(path, product)]): 4 products x 5 JPEG photos, plus a manifest.jsonl in the folder."""
    root = tmp_path_factory.mktemp("products")
    rng = np.random.default_rng(7)
    items: list[tuple[str, str]] = []
    manifest_rows = []
    for sku, (colour, shape) in PRODUCTS.items():
        rel = []
        for i in range(5):
            name = f"{sku}_{i}.jpg"
            draw_product(colour, shape, rng).save(root / name, quality=90)
            items.append((str(root / name), sku))
            rel.append(name)
        manifest_rows.append({"sku": sku, "images": rel})
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in manifest_rows) + "\n")
    return root, items


# Session fixtures for export/serving tests (one exported model shared by all): tests/support.
from tests.support.serving_fixtures import (  # noqa: E402, F401
    _stub_server,
    exported,
    local_embedder,
    models_dir,
    stub_server,
    tflite_embedder,
    tfs_embedder,
    tiny_keras_model,
    tiny_keras_path,
)
