"""The limits every image entering the platform meets: API uploads, manifest and feed imports, fetched
URLs and search queries all check here, so one setting changes them all and a refusal reads the same
everywhere (the messages come from ml.preprocess)."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from django.conf import settings

from catalog.storage import read_image
from ml.preprocess import ImageInfo, ImageRejected, preprocess, too_large, validate_image


class Limits(TypedDict):
    max_bytes: int
    max_pixels: int


def limits() -> Limits:
    """``max_bytes`` and ``max_pixels`` as ml.preprocess takes them."""
    return {"max_bytes": settings.MAX_UPLOAD_BYTES, "max_pixels": settings.MAX_IMAGE_PIXELS}


def check_size(size: int | None) -> None:
    """Refuse a file by its size before reading it into memory (an upload's or a file's declared size)."""
    if size is not None and size > settings.MAX_UPLOAD_BYTES:
        raise too_large(size, settings.MAX_UPLOAD_BYTES)


def validate(data: bytes) -> ImageInfo:
    """Decode ``data`` fully under the limits; ImageRejected (with a code) if it is not a usable image."""
    return validate_image(data, **limits())


def stored_photo_pixels(name: str, size: int) -> np.ndarray:
    """A stored photo as model input (``size`` px square), decoded under the same limits it was admitted
    with: ml.preprocess's built-in ones would refuse photos that a raised MAX_UPLOAD_BYTES let in.
    FileNotFoundError if the file is gone, ImageRejected if it cannot be decoded."""
    return preprocess(read_image(name), size, **limits())


def refusal_message(exc: ImageRejected) -> str:
    """What a person is told about a refused image, in the API's error body and the admin's form alike.
    Size and crop problems read as they are; the others name their machine-readable code too."""
    if exc.code in ("image_too_large", "invalid_crop"):
        return exc.message
    return f"{exc.message} ({exc.code})"
