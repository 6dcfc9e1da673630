"""Every kind of bad input the one image-validation function must refuse, with its code."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.preprocess import (
    ALLOWED_FORMATS,
    EXTENSIONS,
    ImageRejected,
    load_image,
    parse_crop,
    preprocess,
    sniff_format,
    validate_image,
)
from tests.fixtures.images import exif_rotated_jpeg, image_bytes, png_header_with_size, truncated_jpeg


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"just some text, not a picture\n", "unsupported_format"),
        (b"<html><body>hello</body></html>", "unsupported_format"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "unsupported_format"),
        (truncated_jpeg(), "corrupt_image"),
        (image_bytes(fmt="PNG")[:60], "corrupt_image"),
        (png_header_with_size(20000, 20000), "too_many_pixels"),
    ],
    ids=["empty", "text", "html", "svg", "truncated-jpeg", "truncated-png", "bomb"],
)
def test_rejects_bad_files_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(ImageRejected) as info:
        validate_image(data)
    assert info.value.code == code
    assert info.value.message  # a sentence a person can act on


def test_rejects_formats_outside_the_allow_list() -> None:
    bmp = _save(Image.new("RGB", (8, 8)), "BMP")
    with pytest.raises(ImageRejected) as info:
        validate_image(bmp)
    assert info.value.code == "unsupported_format"
    assert "BMP" in info.value.message


def test_byte_cap() -> None:
    with pytest.raises(ImageRejected) as info:
        validate_image(image_bytes(), max_bytes=100)
    assert info.value.code == "image_too_large"


@pytest.mark.parametrize("mode", ["CMYK", "P", "LA", "I;16", "RGBA", "L", "1"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    base = Image.new("RGB", (16, 12), (120, 40, 200))
    if mode == "I;16":
        image = Image.fromarray((np.arange(16 * 12).reshape(12, 16) * 300).astype(np.uint16))
        fmt = "PNG"
    else:
        image = base.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
    rgb, info = load_image(_save(image, fmt))
    assert rgb.mode == "RGB"
    assert (info.width, info.height) == (16, 12)


def test_sixteen_bit_keeps_its_contrast() -> None:
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (4, 1))
    rgb, _ = load_image(_save(Image.fromarray(ramp), "PNG"))
    values = np.asarray(rgb)[..., 0]
    assert values.min() == 0 and values.max() == 255  # scaled, not clipped to white


def test_transparent_palette_is_composited_on_white() -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    rgb, _ = load_image(_save(image, "PNG", transparency=0))
    assert np.asarray(rgb)[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied() -> None:
    rgb, info = load_image(exif_rotated_jpeg())
    assert (rgb.width, rgb.height) == (20, 40)
    assert (info.width, info.height) == (20, 40)


def test_animated_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = preprocess(buf.getvalue(), 10)
    assert arr[5, 5, 0] > 200 and arr[5, 5, 2] < 50


def test_webp_is_accepted() -> None:
    assert validate_image(image_bytes(fmt="WEBP")).format == "WEBP"


def test_preprocess_letterboxes_to_a_square_uint8_array() -> None:
    arr = preprocess(image_bytes(color=(0, 0, 0), size=(40, 20), pattern=1), 32)
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
    assert arr[0, 0].tolist() == [255, 255, 255]  # padding above a wide image is white


def test_crop_selects_a_region() -> None:
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, 20:] = (0, 255, 0)
    data = _save(Image.fromarray(arr), "PNG")
    out = preprocess(data, 8, crop=(20, 0, 20, 20))
    assert out[4, 4].tolist() == [0, 255, 0]


@pytest.mark.parametrize("value", ["1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,5,5"])
def test_bad_crop_strings(value: str) -> None:
    with pytest.raises(ImageRejected) as info:
        parse_crop(value)
    assert info.value.code == "invalid_crop"


def test_crop_outside_the_image() -> None:
    with pytest.raises(ImageRejected) as info:
        preprocess(image_bytes(size=(10, 10)), 8, crop=(50, 50, 5, 5))
    assert info.value.code == "invalid_crop"


@pytest.mark.parametrize("fmt", sorted(ALLOWED_FORMATS))
def test_the_sniff_names_every_accepted_format_as_pillow_does(fmt) -> None:
    """One magic-number sniff (ml.preprocess.sniff_format) for the decoder's corrupt-or-unsupported
    verdict and the stored file's extension; it agrees with what Pillow decodes."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, fmt)
    data = buffer.getvalue()
    assert sniff_format(data) == fmt == Image.open(io.BytesIO(data)).format
    assert EXTENSIONS[fmt] in {"jpg", "png", "gif", "webp"}
    assert sniff_format(b"BM" + data[2:]) is None
