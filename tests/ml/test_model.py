import keras
import numpy as np
import pytest

from ml.backbones import WeightsError, build_backbone
from ml.model import GeMPooling, build_embedding_model, get_backbone, unfreeze_top_layers

SIZE = 32  # the smallest input MobileNetV2 takes; keeps these tests fast on 2 cores


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_embedding_model(backbone="mobilenet_v2_035", weights=None, image_size=SIZE, embedding_dim=16)


def _pixels(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, SIZE, SIZE, 3)).astype("float32")


def test_embeddings_are_unit_length(tiny_model):
    out = np.asarray(tiny_model.predict_on_batch(_pixels()))
    assert out.shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_bootstrap_model_is_pooled_backbone_features():
    model = build_embedding_model(weights=None, image_size=SIZE, head=False, pooling="avg")
    backbone_channels = get_backbone(model).output_shape[-1]
    out = np.asarray(model.predict_on_batch(_pixels(2)))
    assert out.shape == (2, backbone_channels)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not model.trainable_weights


def test_saved_model_reloads_with_identical_outputs(tiny_model, tmp_path):
    path = tmp_path / "m.keras"
    tiny_model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict_on_batch(_pixels()), tiny_model.predict_on_batch(_pixels()), atol=1e-6
    )


def test_gem_with_p_one_is_average_pooling():
    x = np.random.default_rng(1).random((2, 3, 3, 5)).astype("float32")
    gem = keras.ops.convert_to_numpy(GeMPooling(p=1.0)(x))
    np.testing.assert_allclose(gem, x.mean(axis=(1, 2)), rtol=1e-5)
    restored = GeMPooling.from_config(GeMPooling(p=2.5, trainable_p=True).get_config())
    assert restored.initial_p == 2.5 and restored.trainable_p


def test_unfreeze_top_layers_keeps_batchnorm_frozen(tiny_model):
    count = unfreeze_top_layers(tiny_model, 20)
    backbone = get_backbone(tiny_model)
    assert count > 0
    assert not backbone.layers[0].trainable
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert not layer.trainable
    assert any(layer.trainable for layer in backbone.layers[-20:])


def test_model_input_scaling_is_inside_the_model(tiny_model):
    # Two calls with the same 0..255 pixels agree whatever the caller does: no scaling outside.
    assert tiny_model.get_layer("input_scaling").get_config()["offset"] == -1.0


def test_missing_weights_file_is_a_one_line_error(tmp_path):
    with pytest.raises(WeightsError, match="not found") as info:
        build_backbone("mobilenet_v2_035", tmp_path / "nope.weights.h5", SIZE)
    assert "\n" not in str(info.value)


def test_unreadable_weights_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(WeightsError, match="does not fit") as info:
        build_backbone("mobilenet_v2_035", bad, SIZE)
    assert "\n" not in str(info.value)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="mobilenet_v2_035"):
        build_embedding_model(backbone="resnet9000")
