"""The shop's own photos an export quantizes its int8 model with (ml/export.py ``int8_photos``).

Full-integer quantization calibrates every activation's range on real inputs; the catalog's stored
photos are what the model will meet, and a fifth of them (held out of the calibration by the export)
verify the quantized file against the float one. One photo of every product first
(``ml/projection.py::sample_per_product``), so no product's look is left out of the ranges.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings

from catalog import image_limits
from catalog.models import ProductImage
from ml.preprocess import ImageRejected


def int8_photos(image_size: int, cap: int | None = None) -> np.ndarray | None:
    """Up to ``cap`` (default ``INT8_CALIBRATION_PHOTOS``) stored catalog photos as uint8
    [N, S, S, 3] model inputs, read as indexing reads them; None when the cap is 0 or no photo reads
    (the export then writes no int8 file and the float model serves)."""
    from ml.projection import sample_per_product

    cap = settings.INT8_CALIBRATION_PHOTOS if cap is None else cap
    if cap <= 0:
        return None
    rows = list(ProductImage.objects.order_by("pk").values_list("file", "product_id"))
    picked = sample_per_product([product for _, product in rows], cap, seed=0)
    photos = []
    for i in picked:
        try:
            photos.append(image_limits.stored_photo_pixels(rows[int(i)][0], image_size))
        except (ImageRejected, FileNotFoundError, OSError):
            continue  # unreadable now: left out, as indexing would leave it out
    return np.stack(photos) if photos else None
