"""One set of image limits, one message, whether the size is known before or after reading."""

from __future__ import annotations

import pytest

from catalog import image_limits
from ml.preprocess import ImageRejected
from tests.fixtures.images import image_bytes


def test_size_checked_before_and_after_reading_says_the_same(settings) -> None:
    data = image_bytes(size=(40, 40))
    settings.MAX_UPLOAD_BYTES = len(data) - 1
    with pytest.raises(ImageRejected) as before:
        image_limits.check_size(len(data))
    with pytest.raises(ImageRejected) as after:
        image_limits.validate(data)
    assert before.value.code == after.value.code == "image_too_large"
    assert str(before.value) == str(after.value)
    image_limits.check_size(None)  # an unknown size is left to the full check


def test_pixel_limit_comes_from_the_settings(settings) -> None:
    settings.MAX_IMAGE_PIXELS = 40 * 40 - 1
    with pytest.raises(ImageRejected) as info:
        image_limits.validate(image_bytes(size=(40, 40)))
    assert info.value.code == "too_many_pixels"
    settings.MAX_IMAGE_PIXELS = 40 * 40
    assert image_limits.validate(image_bytes(size=(40, 40))).width == 40
