"""Compact vectors: the PCA projection's math, and the real model (SavedModel and TFLite) emitting
exactly the projection of the raw pretrained features."""

from __future__ import annotations

import numpy as np
import pytest

from ml.projection import Projection, apply_projection, fit_projection, sample_per_product


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def features() -> np.ndarray:
    # Positive, correlated features like pooled ReLU activations: a few strong directions plus noise.
    rng = np.random.default_rng(0)
    return np.abs(rng.normal(size=(60, 5)) @ rng.normal(size=(5, 40)) + 0.1 * rng.normal(size=(60, 40)))


@pytest.mark.parametrize("center", [False, True])
def test_fit_keeps_the_leading_orthonormal_directions(features, center) -> None:
    projection = fit_projection(features, 8, center=center)
    assert (projection.in_dim, projection.out_dim, projection.samples) == (40, 8, 60)
    assert projection.matrix.dtype == np.float32 and projection.bias.dtype == np.float32
    np.testing.assert_allclose(projection.matrix.T @ projection.matrix, np.eye(8), atol=1e-5)
    x = _unit(features)
    mean = x.mean(axis=0) if center else np.zeros(40)
    np.testing.assert_allclose(projection.bias, -mean @ projection.matrix, atol=1e-6)
    # The variance kept is what the top 8 eigenvalues of the (centred or not) second moment hold.
    eigen = np.sort(np.linalg.eigvalsh((x - mean).T @ (x - mean)))[::-1]
    assert projection.explained == pytest.approx(eigen[:8].sum() / eigen.sum(), rel=1e-6)
    assert 0.75 < projection.explained <= 1.0  # a few strong directions (folded by abs), little noise
    np.testing.assert_allclose(
        apply_projection(features, projection), (x @ projection.matrix + projection.bias), atol=1e-5
    )


def test_out_dim_is_capped_by_samples_and_input() -> None:
    rng = np.random.default_rng(1)
    assert fit_projection(rng.random((5, 40)), 256, center=False).out_dim == 5
    assert fit_projection(rng.random((100, 12)), 256, center=True).out_dim == 12


def test_an_uncentred_fit_on_the_gallery_ranks_it_exactly_as_the_raw_features(features) -> None:
    # With no more samples than dims the projection spans the gallery: every query's dot product with
    # a gallery vector is unchanged, so no neighbour moves (what a small one-photo catalog would get).
    gallery, queries = features[:20], np.random.default_rng(2).random((7, 40))
    projection = fit_projection(gallery, 32, center=False)
    raw = _unit(queries) @ _unit(gallery).T
    projected = apply_projection(queries, projection) @ apply_projection(gallery, projection).T
    np.testing.assert_allclose(projected, raw, atol=1e-5)


def test_save_and_load_round_trip(features, tmp_path) -> None:
    projection = fit_projection(features, 6, center=True)
    loaded = Projection.load(projection.save(tmp_path / "projection.npz"))
    np.testing.assert_array_equal(loaded.matrix, projection.matrix)
    np.testing.assert_array_equal(loaded.bias, projection.bias)
    assert (loaded.explained, loaded.centered, loaded.samples) == (
        pytest.approx(projection.explained),
        True,
        60,
    )
    assert Projection.from_dict(projection.to_dict()).summary() == projection.summary()


def test_bad_shapes_are_refused(features) -> None:
    projection = fit_projection(features, 4, center=False)
    with pytest.raises(ValueError):
        apply_projection(features[:, :10], projection)
    with pytest.raises(ValueError):
        fit_projection(features, 0, center=False)


def test_sample_takes_one_photo_of_every_product_first() -> None:
    products = ["a"] * 10 + ["b"] * 3 + ["c"]
    picked = sample_per_product(products, 5, seed=3)
    assert len(picked) == 5 and len(set(picked.tolist())) == 5
    assert {products[i] for i in picked[:3]} == {"a", "b", "c"}
    assert len(sample_per_product(products, 100)) == len(products)


# --- the real model --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_and_compact(tmp_path_factory):
    import keras

    from ml.export import _verification_images
    from ml.model import build_embedding_model, with_projection

    keras.utils.set_random_seed(5)
    raw = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=32, head=False, pooling="avg"
    )
    rng = np.random.default_rng(4)
    catalog = rng.integers(0, 256, size=(40, 32, 32, 3)).astype(np.float32)
    projection = fit_projection(np.asarray(raw(catalog)), 16, center=True)
    images = _verification_images(32)
    expected = _unit(apply_projection(np.asarray(raw(images.astype(np.float32))), projection))
    return raw, with_projection(raw, projection), projection, images, expected


def test_the_compact_model_emits_the_projection_of_the_raw_features(raw_and_compact) -> None:
    raw, compact, projection, images, expected = raw_and_compact
    assert compact.output_shape == (None, 16) and raw.output_shape == (None, 1280)
    assert not compact.get_layer("compact").trainable
    got = np.asarray(compact(images.astype(np.float32)))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_build_embedding_model_takes_a_projection() -> None:
    from ml.model import build_embedding_model

    projection = fit_projection(np.random.default_rng(6).random((30, 1280)), 12, center=False)
    model = build_embedding_model(
        backbone="mobilenet_v2_035",
        weights=None,
        image_size=32,
        head=False,
        pooling="avg",
        projection=projection,
    )
    assert model.output_shape == (None, 12)
    np.testing.assert_array_equal(model.get_layer("compact").get_weights()[0], projection.matrix)
    with pytest.raises(ValueError, match="head=False"):
        build_embedding_model(backbone="mobilenet_v2_035", weights=None, image_size=32, projection=projection)


def test_the_exported_savedmodel_and_tflite_emit_the_compact_vector(raw_and_compact, tmp_path) -> None:
    import tensorflow as tf

    from ml.export import export_saved_model
    from ml.tflite import TFLiteRunner

    _, compact, _, images, expected = raw_and_compact
    result = export_saved_model(compact, tmp_path, "lookalike", 1)
    assert result.embedding_dim == 16
    served = tf.saved_model.load(str(result.path)).signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(served["embeddings"].numpy(), expected, atol=1e-5)
    lite = TFLiteRunner(result.tflite_path).run(images)
    assert lite.shape == (len(images), 16)
    np.testing.assert_allclose(lite, expected, atol=1e-4)
