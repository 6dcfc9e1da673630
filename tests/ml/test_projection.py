"""Compact vectors: the PCA and learned-whitening projections' math, and the real model (SavedModel
and TFLite) emitting exactly the projection of the raw pretrained features."""

from __future__ import annotations

import numpy as np
import pytest

from ml.projection import (
    Projection,
    apply_projection,
    fit_projection,
    fit_whitening,
    paired_groups,
    sample_in_pairs,
    sample_per_product,
)


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


def _recall1(queries: np.ndarray, q_labels: np.ndarray, gallery: np.ndarray, g_labels: np.ndarray) -> float:
    nearest = np.argmax(_unit(queries) @ _unit(gallery).T, axis=1)
    return float(np.mean(g_labels[nearest] == q_labels))


def _photos(products: int, per_product: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Photos whose products differ along 8 weak directions while each photo varies 3x more along 10
    others (light, angle): raw cosine ranks by the nuisance, so it mostly finds the wrong product.
    Small around a large common part, as pooled features are, so L2 normalisation stays near linear."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(size=(products, 8)) * 0.05
    nuisance_basis, identity_basis = rng.normal(size=(10, 40)), rng.normal(size=(8, 40))
    labels = np.repeat(np.arange(products), per_product)
    nuisance = rng.normal(size=(len(labels), 10)) * 0.15
    noise = 0.005 * rng.normal(size=(len(labels), 40))
    return 5.0 + identity[labels] @ identity_basis + nuisance @ nuisance_basis + noise, labels


def test_whitening_learned_from_pairs_finds_what_raw_features_miss() -> None:
    x, labels = _photos(40, 5, seed=7)
    query = np.arange(len(x)) % 5 == 4  # each product's fifth photo is the shopper's
    catalog, labels, queries, q_labels = x[~query], labels[~query], x[query], labels[query]
    projection = fit_whitening(catalog, labels, 16, ridge=0.01)
    raw = _recall1(queries, q_labels, catalog, labels)
    pca = fit_projection(catalog, 16, center=True)
    pca_r1 = _recall1(apply_projection(queries, pca), q_labels, apply_projection(catalog, pca), labels)
    whitened = _recall1(
        apply_projection(queries, projection), q_labels, apply_projection(catalog, projection), labels
    )
    assert whitened >= 0.9 and whitened > raw + 0.3 and whitened > pca_r1 + 0.3, (raw, pca_r1, whitened)


def test_whitening_makes_the_pair_covariance_the_identity(features) -> None:
    labels = np.repeat(np.arange(20), 3)
    projection = fit_whitening(features, labels, 40, ridge=0.0)
    assert (projection.method, projection.pairs, projection.paired_products) == ("whitening", 60, 20)
    assert projection.centered and (projection.in_dim, projection.out_dim, projection.samples) == (40, 40, 60)
    x = _unit(features)
    np.testing.assert_allclose(projection.bias, -x.mean(axis=0) @ projection.matrix, rtol=1e-4, atol=1e-4)
    y = apply_projection(features, projection).astype(np.float64)
    diffs = np.concatenate([y[g][:, None] - y[g][None, :] for g in np.split(np.arange(60), 20)]).reshape(
        -1, 40
    )
    pair_covariance = diffs.T @ diffs / 2 / 60  # each pair appears twice, as (i, j) and (j, i)
    np.testing.assert_allclose(pair_covariance, np.eye(40), atol=1e-2)
    # Then the rotation orders the whitened catalog by variance: its covariance is diagonal, decreasing.
    centred = y - y.mean(axis=0)
    covariance = centred.T @ centred / len(y)
    variances = np.diag(covariance)
    np.testing.assert_allclose(covariance, np.diag(variances), atol=1e-3 * variances.max())
    assert np.all(np.diff(variances) <= 1e-6 * variances.max())


def test_whitening_needs_pairs_and_a_sane_ridge(features) -> None:
    with pytest.raises(ValueError, match="two or more photos"):
        fit_whitening(features, np.arange(60), 8, ridge=0.1)
    with pytest.raises(ValueError, match="ridge"):
        fit_whitening(features, np.repeat(np.arange(30), 2), 8, ridge=-1.0)
    with pytest.raises(ValueError, match="labels"):
        fit_whitening(features, np.repeat(np.arange(10), 2), 8, ridge=0.1)
    # A ridge keeps a fit on very few pairs finite (the pair covariance is then singular).
    few = fit_whitening(features, [0, 0] + list(range(1, 59)), 8, ridge=0.1)
    assert few.pairs == 1 and np.all(np.isfinite(few.matrix)) and few.out_dim == 8


def test_a_whitening_round_trips_and_an_old_file_loads_as_pca(features, tmp_path) -> None:
    projection = fit_whitening(features, np.repeat(np.arange(20), 3), 8, ridge=0.1)
    loaded = Projection.load(projection.save(tmp_path / "w.npz"))
    assert loaded.summary() == projection.summary()
    assert loaded.summary()["method"] == "whitening" and loaded.summary()["ridge"] == 0.1
    old = {
        k: v
        for k, v in fit_projection(features, 8, center=True).to_dict().items()
        if k in ("matrix", "bias", "explained", "centered", "samples")
    }
    assert Projection.from_dict(old).method == "pca"


def test_paired_groups_and_the_sample_in_pairs() -> None:
    groups, pairs = paired_groups(["a", "b", "b", "c", "c", "c"])
    assert sorted(len(g) for g in groups) == [2, 3] and pairs == 1 + 3
    # More products than the cap: each product sampled still brings two photos, so there are pairs.
    products = np.repeat(np.arange(500), 3)
    picked = sample_in_pairs(products, 100, seed=1)
    assert len(picked) == 100 and len(set(picked.tolist())) == 100
    assert set(np.unique(products[picked], return_counts=True)[1].tolist()) == {2}
    # Few products: up to cap // products each first, then the rest at random until the cap.
    products = np.array([0] * 50 + [1] * 5 + [2] * 1)
    picked = sample_in_pairs(products, 20, seed=2)
    counts = dict(zip(*np.unique(products[picked], return_counts=True), strict=True))
    assert len(picked) == 20 and counts[1] == 5 and counts[2] == 1 and counts[0] == 14
    assert len(sample_in_pairs(products, 1000)) == len(products)
    # Products are drawn evenly, not by their photo count: with a cap far below the catalog, a product
    # with ten photos is sampled about as often as one with a single photo.
    products = np.array([n for n in range(2000) for _ in range(10 if n < 1000 else 1)])
    picked = sample_in_pairs(products, 400, seed=3)
    many = np.mean(products[picked] < 1000)  # share of sampled photos from the ten-photo products
    sampled = np.unique(products[picked])
    assert 0.4 < np.mean(sampled < 1000) < 0.6, np.mean(sampled < 1000)
    assert many > 0.5  # each of them brings two photos


# --- the real model --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["pca", "whitening"])
def raw_and_compact(request):
    import keras

    from ml.export import _verification_images
    from ml.model import build_embedding_model, with_projection

    keras.utils.set_random_seed(5)
    raw = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=32, head=False, pooling="avg"
    )
    rng = np.random.default_rng(4)
    catalog = rng.integers(0, 256, size=(40, 32, 32, 3)).astype(np.float32)
    features = np.asarray(raw(catalog))
    if request.param == "whitening":  # 20 products, two photos each
        projection = fit_whitening(features, np.repeat(np.arange(20), 2), 16, ridge=0.1)
    else:
        projection = fit_projection(features, 16, center=True)
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
