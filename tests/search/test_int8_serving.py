"""The int8 model on the platform: the pretrained export quantizes on the shop's stored photos, the
version records the check (a refused file says why), and with EMBEDDING_PRECISION=int8 the embedder
serves a verified int8 file (float serves model.tflite; the default, auto, picks by the CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from catalog import services
from ml.export import DEFAULT_INT8_MIN_COSINE, export_saved_model, int8_summary
from search.embedders import embedder_for, reset_embedders, serving_precision
from search.models import ModelKind, ModelVersion
from search.services.int8_photos import int8_photos
from search.services.model_versions import bootstrap_model_ensure
from tests.fixtures.images import image_bytes
from tests.support.serving_fixtures import build_tiny_model, random_images


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
def test_the_pretrained_export_quantizes_on_stored_photos_and_records_the_check(pretrained) -> None:
    _photos(24)
    photos = int8_photos(32)
    assert photos is not None and photos.shape == (20, 32, 32, 3) and photos.dtype == np.uint8

    model = bootstrap_model_ensure().model
    int8 = model.config["int8"]
    # The random-weight test backbone quantizes to zero vectors (its activations' ranges are not a
    # trained network's): the check refuses the file, says why, and the float file serves.
    assert int8["file"] is None and "cosine nan" in int8["reason"], int8
    assert embedder_for(model).precision == "float"
    assert serving_precision(model).startswith("float (no verified int8 file: no recipe passed")


@pytest.mark.django_db
def test_a_verified_int8_file_serves_unless_the_setting_says_float(settings, tmp_path) -> None:
    # A model the check passes: the tiny real model of the export tests (its near-level neighbours
    # need the lower nearest-photo bar, tests/ml/test_int8.py).
    result = export_saved_model(
        build_tiny_model(), tmp_path, "lookalike", 1, int8_photos=random_images(20, seed=3), int8_min_top1=0.5
    )
    assert result.tflite_int8_path is not None, result.tflite_int8
    model = ModelVersion.objects.create(
        version=1,
        kind=ModelKind.BOOTSTRAP,
        backbone="tiny",
        embedding_dim=result.embedding_dim,
        image_size=result.image_size,
        export_path=str(result.path),
        config={"int8": int8_summary(result.tflite_int8)},
    )
    settings.EMBEDDING_PRECISION = "int8"
    reset_embedders()
    try:
        embedder = embedder_for(model)
        assert embedder.precision == "int8" and serving_precision(model).startswith("int8 (int8; vs float")
        images = random_images(4, seed=9)
        quantized = embedder.embed(images)
        settings.EMBEDDING_PRECISION = "float"
        reset_embedders()
        exact = embedder_for(model)
        assert exact.precision == "float" and serving_precision(model) == "float (EMBEDDING_PRECISION=float)"
        assert np.all(np.sum(quantized * exact.embed(images), axis=1) >= DEFAULT_INT8_MIN_COSINE)
    finally:
        reset_embedders()


@pytest.mark.django_db(transaction=True)
def test_without_calibration_photos_the_float_model_serves(pretrained) -> None:
    pretrained.INT8_CALIBRATION_PHOTOS = 0
    _photos(3)
    model = bootstrap_model_ensure().model
    assert model.config["int8"] == {"file": None, "reason": "exported without int8 photos"}
    assert embedder_for(model).precision == "float"
    assert serving_precision(model).startswith("float (no verified int8 file")


def test_the_admin_says_when_auto_chose_float(settings, tmp_path) -> None:
    result = export_saved_model(build_tiny_model(), tmp_path, "lookalike", 1)
    model = ModelVersion(export_path=str(result.path))
    settings.EMBEDDING_PRECISION_SETTING, settings.EMBEDDING_PRECISION = "auto", "float"
    assert (
        serving_precision(model)
        == "float (EMBEDDING_PRECISION=auto: this CPU has no int8 dot-product instructions)"
    )
    settings.EMBEDDING_PRECISION_SETTING = "float"
    assert serving_precision(model) == "float (EMBEDDING_PRECISION=float)"
