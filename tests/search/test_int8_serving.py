"""The int8 model on the platform: the pretrained export quantizes on the shop's stored photos, the
version records the check, and with EMBEDDING_PRECISION=int8 the embedder serves the int8 file (the
default, float, serves model.tflite)."""

from __future__ import annotations

import numpy as np
import pytest

from catalog import services
from search.embedders import embedder_for, reset_embedders, serving_precision
from search.services.int8_photos import int8_photos
from search.services.model_versions import bootstrap_model_ensure
from tests.fixtures.images import image_bytes


@pytest.fixture
def pretrained(settings, tmp_path, vector_store_path, media_root):
    """The real pretrained export, random weights at 32 px, raw vectors, quantized on 20 photos, int8 on."""
    settings.BACKBONE_WEIGHTS = "none"
    settings.BOOTSTRAP_BACKBONE = "mobilenet_v2_035"
    settings.BOOTSTRAP_IMAGE_SIZE = 32
    settings.BOOTSTRAP_COMPACT_DIM = 0
    settings.INT8_CALIBRATION_PHOTOS = 20
    settings.EMBEDDING_PRECISION = "int8"
    settings.MODELS_DIR = tmp_path / "models"
    reset_embedders()
    yield settings
    reset_embedders()


def _photos(count: int) -> None:
    for n in range(count):
        product = services.product_create(sku=f"Q{n:03d}", title=f"product {n}")
        data = image_bytes(color=(25 * n % 250, 90, 160), pattern=n % 9 + 1)
        services.product_image_add(product=product, data=data, announce=False)


@pytest.mark.django_db(transaction=True)
def test_the_pretrained_export_serves_its_verified_int8_file(pretrained) -> None:
    _photos(24)
    photos = int8_photos(32)
    assert photos is not None and photos.shape == (20, 32, 32, 3) and photos.dtype == np.uint8

    model = bootstrap_model_ensure().model
    int8 = model.config["int8"]
    if int8["file"] is None:
        # The random-weight test backbone may quantize to zero vectors (its activations' ranges are
        # not a trained network's); then the check refuses it and the float file serves, as it should.
        assert "cosine" in int8["reason"], int8
        assert embedder_for(model).precision == "float"
        assert serving_precision(model).startswith("float (no verified int8 file: no recipe passed")
        return
    assert (
        int8["file"] == "model_int8.tflite" and int8["recipe"] == "int8" and int8["calibration_photos"] == 16
    )
    embedder = embedder_for(model)
    assert embedder.precision == "int8"
    assert serving_precision(model).startswith("int8")
    images = photos[:4]
    quantized = embedder.embed(images)

    pretrained.EMBEDDING_PRECISION = "float"
    reset_embedders()
    exact = embedder_for(model)
    assert exact.precision == "float" and serving_precision(model) == "float (EMBEDDING_PRECISION=float)"
    cosine = np.sum(quantized * exact.embed(images), axis=1)
    assert np.all(cosine >= int8["min_cosine"] - 0.05)


@pytest.mark.django_db(transaction=True)
def test_without_calibration_photos_the_float_model_serves(pretrained) -> None:
    pretrained.INT8_CALIBRATION_PHOTOS = 0
    _photos(3)
    model = bootstrap_model_ensure().model
    assert model.config["int8"] == {"file": None, "reason": "exported without int8 photos"}
    assert embedder_for(model).precision == "float"
    assert serving_precision(model).startswith("float (no verified int8 file")
