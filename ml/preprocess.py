"""The one path from image bytes to model input.

Training, indexing and querying all call :func:`preprocess`, so the pixels a model was trained on
and the pixels it is queried with are produced by the same code (train/serve skew is a bug class
this removes). The model receives decoded, resized ``uint8`` RGB pixels; scaling to the backbone's
range happens inside the model, so TF Serving clients never need to know it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 20 MB is far above any catalog photo (a 12 MP phone JPEG is 3-6 MB) and bounds memory per request.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# 50 MP: a 7000x7000 photo passes; a decompression bomb (e.g. 20000x20000) does not. Decoding a
# 50 MP image costs about 150 MB as RGB, which is the most one request may hold.
DEFAULT_MAX_PIXELS = 50_000_000
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF"})
# The file name extension each accepted format is stored under (catalog photos, shoppers' photos).
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
DEFAULT_IMAGE_SIZE = 224


class ImageRejected(ValueError):
    """An image that cannot be used, with a machine-readable ``code`` and a message a person can act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    bytes: int


def too_large(size: int, limit: int) -> ImageRejected:
    """The one "file too large" rejection, for a size known before or after reading the bytes."""
    return ImageRejected("image_too_large", f"The file is {size:,} bytes; the limit is {limit:,} bytes.")


def sniff_format(data: bytes) -> str | None:
    """The accepted format (one of ALLOWED_FORMATS) the bytes' magic number names, without decoding
    them; None for anything else. Says what a file claims to be, not that it decodes."""
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data.startswith(b"\x89PNG"):
        return "PNG"
    if data.startswith(b"GIF8"):
        return "GIF"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _open_checked(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[Image.Image, str]:
    if not data:
        raise ImageRejected("empty_file", "The file is empty.")
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes)
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) about bombs by its own global limit; we apply ours below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected("too_many_pixels", f"The image has too many pixels ({exc}).") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if sniff_format(data) is not None:
            raise ImageRejected(
                "corrupt_image", "The image file is damaged or truncated and cannot be decoded."
            ) from exc
        raise ImageRejected(
            "unsupported_format",
            "The file is not an image in a supported format (JPEG, PNG, WebP or GIF).",
        ) from exc
    fmt = (image.format or "").upper()
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected(
            "unsupported_format",
            f"{fmt or 'This'} images are not accepted; use JPEG, PNG, WebP or GIF.",
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected("corrupt_image", "The image has no pixels.")
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"The image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels.",
        )
    return image, fmt


def load_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[Image.Image, ImageInfo]:
    """Validate and fully decode ``data``; return an upright RGB image and facts about the file.

    Raises :class:`ImageRejected` for anything that is not a whole, supported, reasonably sized image.
    """
    image, fmt = _open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        if fmt == "GIF":
            image.seek(0)  # first frame only
        image.load()  # a real decode: truncated files fail here, not later in a worker
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except ImageRejected:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as exc:
        raise ImageRejected(
            "corrupt_image", "The image file is damaged or truncated and cannot be decoded."
        ) from exc
    info = ImageInfo(format=fmt, width=rgb.width, height=rgb.height, bytes=len(data))
    return rgb, info


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits by the actual range instead of clipping to white.
        arr = np.asarray(image, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        arr8 = (arr * (255.0 / hi)).astype(np.uint8) if hi > 0 else np.zeros(arr.shape, np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(image, dtype=np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite transparent pixels onto white, the way shops display cut-out product shots.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def validate_image(data: bytes, **limits: int) -> ImageInfo:
    """Check that ``data`` is a usable image (full decode); return its facts or raise ImageRejected."""
    return load_image(data, **limits)[1]


def parse_crop(value: str | None) -> tuple[int, int, int, int] | None:
    """Parse ``"x,y,w,h"`` into ints, raising ImageRejected(invalid_crop) when malformed."""
    if value is None or value == "":
        return None
    parts = [p.strip() for p in str(value).split(",")]
    try:
        x, y, w, h = (int(float(p)) for p in parts)
    except ValueError as exc:
        raise ImageRejected("invalid_crop", "crop must be four numbers: x,y,w,h (pixels).") from exc
    if x < 0 or y < 0 or w < 1 or h < 1:
        raise ImageRejected("invalid_crop", "crop needs x,y >= 0 and w,h >= 1.")
    return x, y, w, h


def to_model_input(image: Image.Image, size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Resize an RGB image to ``size`` x ``size`` uint8 pixels (aspect kept, centre-padded)."""
    # Letterboxing keeps a tall bottle or a wide rug whole instead of cropping it away.
    fitted = ImageOps.pad(image, (size, size), method=Image.Resampling.BILINEAR, color=(255, 255, 255))
    return np.asarray(fitted, dtype=np.uint8)


def preprocess(
    data: bytes,
    size: int = DEFAULT_IMAGE_SIZE,
    *,
    crop: tuple[int, int, int, int] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Bytes -> validated, upright, optionally cropped, resized ``uint8`` [size, size, 3] array."""
    return to_model_input(load_cropped(data, crop=crop, max_bytes=max_bytes, max_pixels=max_pixels), size)


def load_cropped(
    data: bytes,
    *,
    crop: tuple[int, int, int, int] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Bytes -> validated, upright, optionally cropped RGB image at its own size (a search embeds it and
    may read its text: one decode for both)."""
    image, _ = load_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if crop is not None:
        x, y, w, h = crop
        if x >= image.width or y >= image.height:
            raise ImageRejected(
                "invalid_crop",
                f"The crop box starts outside the {image.width}x{image.height} image.",
            )
        image = image.crop((x, y, min(x + w, image.width), min(y + h, image.height)))
    return image
