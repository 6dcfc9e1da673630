import math

import keras
import numpy as np
import pytest

from ml.losses import (
    ContrastiveLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    SupervisedContrastiveLoss,
    get_loss,
    uses_proxies,
)

# Three unit vectors: 0 and 1 are orthogonal and share a product; 2 is opposite to 0.
EMB = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype="float32")
LABELS = np.array([0, 0, 1], dtype="int32")


def _value(loss: keras.losses.Loss, labels=LABELS, emb=EMB) -> float:
    return float(keras.ops.convert_to_numpy(loss(labels, emb)))


def test_contrastive_matches_hand_computation():
    margin = 1.5
    # anchor 0: positive d^2 = 2, negative d = 2 > margin; anchor 1: positive 2, negative d = sqrt(2);
    # anchor 2: no positive, negatives at 2 and sqrt(2).
    hinge = (margin - math.sqrt(2)) ** 2
    expected = (2.0 + (2.0 + hinge) + hinge / 2) / 3
    assert _value(ContrastiveLoss(margin=margin)) == pytest.approx(expected, rel=1e-5)


def test_supervised_contrastive_matches_hand_computation():
    # temperature 1: anchor 0 sees s=0 (positive) and s=-1; anchor 1 sees s=0 and s=0; anchor 2 has no positive.
    expected = (math.log(1 + math.exp(-1)) + math.log(2)) / 3
    assert _value(SupervisedContrastiveLoss(temperature=1.0)) == pytest.approx(expected, rel=1e-5)


def test_multi_similarity_matches_hand_computation():
    # Only anchor 1 has mined pairs (its positive and negative are both at similarity 0).
    anchor1 = 0.5 * math.log1p(math.exp(-2 * (0 - 0.5))) + (1 / 50) * math.log1p(math.exp(50 * (0 - 0.5)))
    loss = MultiSimilarityLoss(alpha=2.0, beta=50.0, lam=0.5, epsilon=0.1)
    assert _value(loss) == pytest.approx(anchor1 / 3, rel=1e-5)


@pytest.mark.parametrize("name", ["contrastive", "multi_similarity", "supcon"])
def test_separated_embeddings_cost_less_than_mixed(name):
    labels = np.array([0, 0, 1, 1], dtype="int32")
    separated = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype="float32")
    mixed = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype="float32")
    loss = get_loss(name)
    assert _value(loss, labels, separated) < _value(loss, labels, mixed)


@pytest.mark.parametrize(
    "cls", [ContrastiveLoss, MultiSimilarityLoss, SupervisedContrastiveLoss, ProxyAnchorLoss]
)
def test_losses_serialize_with_their_settings(cls):
    original = cls()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(original))
    assert type(restored) is cls
    assert restored.get_config() == original.get_config()
    assert _value(restored) == pytest.approx(_value(original))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="contrastive"):
        get_loss("triplet-ish")


def test_proxy_anchor_matches_hand_computation():
    # Two images (products 0 and 1) against three proxies; proxy 2 has no image in the batch, so it
    # only pushes. alpha 2, delta 0.1.
    sims = np.array([[0.5, 0.1, -0.2], [0.3, 0.9, 0.4]], dtype="float32")
    labels = np.array([0, 1], dtype="int32")
    a, d = 2.0, 0.1
    pos = (math.log1p(math.exp(-a * (0.5 - d))) + math.log1p(math.exp(-a * (0.9 - d)))) / 2
    neg = (
        math.log1p(math.exp(a * (0.3 + d)))  # proxy 0: image 1 is a negative
        + math.log1p(math.exp(a * (0.1 + d)))  # proxy 1: image 0
        + math.log1p(math.exp(a * (-0.2 + d)) + math.exp(a * (0.4 + d)))  # proxy 2: both
    ) / 3
    assert _value(ProxyAnchorLoss(alpha=a, delta=d), labels, sims) == pytest.approx(pos + neg, rel=1e-5)


def test_proxy_anchor_prefers_images_near_their_own_proxy():
    labels = np.array([0, 1], dtype="int32")
    near_own = np.array([[0.9, -0.1], [-0.1, 0.9]], dtype="float32")
    near_other = np.array([[-0.1, 0.9], [0.9, -0.1]], dtype="float32")
    loss = get_loss("proxy_anchor")
    assert _value(loss, labels, near_own) < _value(loss, labels, near_other)
    assert uses_proxies("proxy_anchor") and not uses_proxies("multi_similarity")
