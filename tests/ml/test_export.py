"""Export contract (docs/CONTRACTS.md): TF Serving layout, signature, metadata, verification, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.export import (
    ExportError,
    ExportVerificationError,
    VersionExistsError,
    export_saved_model,
)
from tests.support.serving_fixtures import MODEL_NAME, TINY_DIM, TINY_SIZE, build_tiny_model, random_images


def test_layout_and_metadata(exported, models_dir):
    version_dir = models_dir / MODEL_NAME / "1"
    assert exported.path == version_dir
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables").is_dir()
    assert (exported.image_size, exported.embedding_dim) == (TINY_SIZE, TINY_DIM)
    assert exported.max_abs_diff <= 1e-5
    meta = json.loads((version_dir / "assets.extra" / "lookalike.json").read_text())
    assert meta["image_size"] == TINY_SIZE
    assert meta["embedding_dim"] == TINY_DIM
    assert meta["backbone"] == "tiny"
    # Only numeric version folders: TF Serving must never see a temp folder.
    assert [p.name for p in (models_dir / MODEL_NAME).iterdir()] == ["1"]


def test_signature_matches_contract(exported, tiny_keras_model):
    import tensorflow as tf

    fn = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
    args, kwargs = fn.structured_input_signature
    assert args == () and list(kwargs) == ["images"]
    assert kwargs["images"].dtype == tf.uint8
    assert kwargs["images"].shape.as_list() == [None, TINY_SIZE, TINY_SIZE, 3]
    assert list(fn.structured_outputs) == ["embeddings"]
    assert fn.structured_outputs["embeddings"].dtype == tf.float32
    assert fn.structured_outputs["embeddings"].shape.as_list() == [None, TINY_DIM]

    images = random_images(3, seed=5)
    served = fn(images=tf.constant(images))["embeddings"].numpy()
    expected = np.asarray(tiny_keras_model(images.astype("float32")))
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_refuses_to_overwrite_a_version(exported, models_dir, tiny_keras_path):
    before = (exported.path / "saved_model.pb").read_bytes()
    with pytest.raises(VersionExistsError):
        export_saved_model(tiny_keras_path, models_dir, MODEL_NAME, 1)
    assert (exported.path / "saved_model.pb").read_bytes() == before
    assert isinstance(VersionExistsError("x"), FileExistsError)


def test_export_from_model_object_with_explicit_backbone(tmp_path, tiny_keras_model):
    result = export_saved_model(tiny_keras_model, tmp_path, "other", 7, backbone="custom")
    assert result.path == tmp_path / "other" / "7"
    assert json.loads((result.path / "assets.extra" / "lookalike.json").read_text())["backbone"] == "custom"


def test_failed_verification_leaves_nothing(tmp_path):
    import keras

    # No L2 normalisation: breaks the contract, so export must refuse and leave no version behind.
    inputs = keras.Input(shape=(TINY_SIZE, TINY_SIZE, 3), name="images")
    outputs = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ExportVerificationError, match="L2"):
        export_saved_model(keras.Model(inputs, outputs), tmp_path, "bad", 1)
    assert list((tmp_path / "bad").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "version", "match"),
    [
        ("../escape", 1, "model name"),
        (".hidden", 1, "model name"),
        ("ok", -1, "version"),
        ("ok", True, "version"),
    ],
)
def test_rejects_bad_name_or_version(tmp_path, name, version, match):
    with pytest.raises(ExportError, match=match):
        export_saved_model(build_tiny_model(), tmp_path, name, version)


def test_rejects_unfixed_input_size(tmp_path):
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    outputs = keras.layers.UnitNormalization()(keras.layers.GlobalAveragePooling2D()(inputs))
    with pytest.raises(ExportError, match="fixed square size"):
        export_saved_model(keras.Model(inputs, outputs), tmp_path, "m", 1)
    assert not (tmp_path / "m").exists()


def test_bootstrap_model_from_ml_model_round_trips(tmp_path):
    """The real model factory's head=False bootstrap model, saved as .keras (custom GeM layer) and exported."""
    model_mod = pytest.importorskip("ml.model")
    from ml.serving import LocalEmbedder

    size = 64
    model = model_mod.build_embedding_model(weights=None, image_size=size, head=False, pooling="gem")
    keras_path = tmp_path / "bootstrap.keras"
    model.save(keras_path)
    result = export_saved_model(keras_path, tmp_path / "models", "bootstrap", 1)
    assert result.image_size == size and result.max_abs_diff <= 1e-5
    meta = json.loads((result.path / "assets.extra" / "lookalike.json").read_text())
    assert meta["backbone"] == "mobilenet_v2_035"

    images = random_images(2, size=size, seed=9)
    local = LocalEmbedder(result.path).embed(images)
    # Against the in-memory original: export loaded the .keras file, so this also covers that round trip.
    expected = np.asarray(model(images.astype("float32")))
    np.testing.assert_allclose(local, expected, atol=1e-5)
