"""Export contract (docs/CONTRACTS.md): TF Serving layout, signature, metadata, verification, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml import tflite
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
    assert exported.tflite_path == version_dir / "model.tflite" and exported.tflite_path.is_file()
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


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_tflite_model_agrees_with_the_saved_model(exported):
    import tensorflow as tf

    meta = json.loads((exported.path / "assets.extra" / "lookalike.json").read_text())["tflite"]
    assert meta["file"] == "model.tflite"
    assert meta["bytes"] == exported.tflite_path.stat().st_size
    assert meta["min_cosine"] >= 0.9999
    assert meta["max_abs_diff"] == exported.tflite_max_abs_diff < 1e-4

    # Images the export's own check never saw, at a batch size it never ran.
    images = random_images(5, seed=11)
    runner = tflite.TFLiteRunner(exported.tflite_path)
    assert (runner.image_size, runner.dim) == (TINY_SIZE, TINY_DIM)
    fn = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
    expected = fn(images=tf.constant(images))["embeddings"].numpy()
    assert np.all(_cosines(runner.run(images), expected) >= 0.9999)


def test_tflite_model_carries_the_signature_tf_serving_reads(exported):
    from tensorflow.core.protobuf import meta_graph_pb2

    signatures = tflite.read_signature_defs(exported.tflite_path.read_bytes())
    assert list(signatures) == ["serving_default"]
    signature = meta_graph_pb2.SignatureDef.FromString(signatures["serving_default"])
    runner = tflite.TFLiteRunner(exported.tflite_path)
    # Aliases are the contract's; TensorInfo names are the TFLite model's own tensors.
    assert list(signature.inputs) == ["images"] and list(signature.outputs) == ["embeddings"]
    assert signature.inputs["images"].name == runner.input_tensor_name
    assert signature.outputs["embeddings"].name == runner.output_tensor_name
    assert [d.size for d in signature.inputs["images"].tensor_shape.dim] == [-1, TINY_SIZE, TINY_SIZE, 3]
    assert [d.size for d in signature.outputs["embeddings"].tensor_shape.dim] == [-1, TINY_DIM]


def test_tflite_that_disagrees_leaves_no_version(tmp_path, monkeypatch, tiny_keras_model):
    # A converter that hands back another model's weights (same shapes and signature): only the
    # numbers can tell, and the export must refuse and remove everything it wrote.
    other = build_tiny_model()
    other.set_weights([np.roll(w, 1, axis=-1) for w in other.get_weights()])
    impostor = export_saved_model(other, tmp_path / "impostor", "m", 1, tflite=False)
    real_convert = tflite.convert_saved_model
    monkeypatch.setattr(tflite, "convert_saved_model", lambda _saved_model_dir: real_convert(impostor.path))

    with pytest.raises(ExportVerificationError, match="cosine"):
        export_saved_model(tiny_keras_model, tmp_path / "models", MODEL_NAME, 1)
    assert list((tmp_path / "models" / MODEL_NAME).iterdir()) == []


def test_tflite_opt_out_writes_the_saved_model_only(tmp_path, tiny_keras_model):
    result = export_saved_model(tiny_keras_model, tmp_path, "plain", 1, tflite=False)
    assert (result.path / "saved_model.pb").is_file()
    assert not (result.path / "model.tflite").exists()
    assert result.tflite_path is None and result.tflite_max_abs_diff is None
    assert json.loads((result.path / "assets.extra" / "lookalike.json").read_text())["tflite"] is None


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
    from ml.serving import LocalEmbedder, TFLiteEmbedder

    size = 64
    model = model_mod.build_embedding_model(weights=None, image_size=size, head=False, pooling="gem")
    keras_path = tmp_path / "bootstrap.keras"
    model.save(keras_path)
    result = export_saved_model(keras_path, tmp_path / "models", "bootstrap", 1)
    assert result.image_size == size and result.max_abs_diff <= 1e-5
    meta = json.loads((result.path / "assets.extra" / "lookalike.json").read_text())
    assert meta["backbone"] == model_mod.DEFAULT_BACKBONE

    images = random_images(2, size=size, seed=9)
    local = LocalEmbedder(result.path).embed(images)
    # Against the in-memory original: export loaded the .keras file, so this also covers that round trip.
    expected = np.asarray(model(images.astype("float32")))
    np.testing.assert_allclose(local, expected, atol=1e-5)
    # The real backbone (depthwise convolutions, GeM's power op) through the TFLite runtime.
    assert np.all(_cosines(TFLiteEmbedder(result.path).embed(images), local) >= 0.9999)
