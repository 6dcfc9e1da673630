"""The projection head started from the pooled features' principal directions keeps their geometry."""

from __future__ import annotations

import numpy as np
import pytest

from ml.backbone_split import split_embedding_model
from ml.head_init import init_head_from_features, pooled_features, principal_kernel
from ml.model import HEAD_LAYER, build_embedding_model


def _cosines(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def test_principal_kernel_keeps_dot_products_of_low_rank_features() -> None:
    rng = np.random.default_rng(0)
    features = np.abs(rng.normal(size=(200, 6))) @ np.abs(rng.normal(size=(6, 40)))  # rank 6, >= 0
    kernel = principal_kernel(features, 8)
    assert kernel.shape == (40, 8)
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(8), atol=1e-5)  # orthonormal directions
    projected = features @ kernel
    np.testing.assert_allclose(projected @ projected.T, features @ features.T, rtol=1e-4)
    assert np.all(features.mean(axis=0) @ kernel[:, :6] > 0)  # deterministic orientation


def test_principal_kernel_refuses_an_empty_matrix() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        principal_kernel(np.zeros((0, 4)), 2)


def test_the_initialised_head_reproduces_the_pooled_features_cosines() -> None:
    model = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=64, embedding_dim=16, pooling="avg"
    )
    bottom, top = split_embedding_model(model, 2)
    pixels = np.random.default_rng(1).integers(0, 256, (12, 64, 64, 3)).astype("float32")
    features = np.asarray(bottom.predict(pixels, verbose=0))
    before = top.get_layer(HEAD_LAYER).kernel.numpy().copy()
    assert init_head_from_features(top, features) == 12
    after = top.get_layer(HEAD_LAYER).kernel.numpy()
    assert not np.allclose(before, after)
    pooled = pooled_features(top, features)
    embedded = np.asarray(top.predict(features, verbose=0))
    # 12 photos span at most 12 of the 16 directions: their cosines come through (the other 4 columns
    # stay random at a thousandth of the scale).
    np.testing.assert_allclose(_cosines(embedded), _cosines(pooled), atol=1e-4)
