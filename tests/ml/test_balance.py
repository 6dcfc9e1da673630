"""ml/balance.py: offsets that stop a few gallery items from winning most queries."""

from __future__ import annotations

import numpy as np
import pytest

from ml.balance import MAX_OFFSET, fit_offsets, offsets_from_similarities


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _hub_world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ten products. Every query shares a direction with the others (how any shopper's photo looks: a
    shelf, a hand), and gallery item 0 shares it too (a hub): the raw nearest neighbour hands it most
    queries, although each query is still nearer its own product's item than the others'."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(64, 11)))[0].T  # orthonormal: 10 products + the shared one
    products, shared = basis[:10], basis[10]
    gallery = products.copy()
    gallery[0] = _unit(0.5 * products[0] + 0.8 * shared)
    labels = np.repeat(np.arange(10), 40)
    noise = 0.15 * rng.normal(size=(len(labels), 64)) / np.sqrt(64)
    queries = _unit(0.5 * products[labels] + 0.8 * shared + noise)
    return queries, gallery, labels


def test_the_hub_gets_the_lowest_offset_and_accuracy_rises() -> None:
    queries, gallery, labels = _hub_world()
    raw = queries @ gallery.T
    offsets = fit_offsets(queries, gallery)
    assert offsets.shape == (10,) and offsets.dtype == np.float32
    assert int(offsets.argmin()) == 0
    assert float(offsets.min()) >= -MAX_OFFSET
    raw_wins = np.bincount(raw.argmax(1), minlength=10)
    balanced_wins = np.bincount((raw + offsets).argmax(1), minlength=10)
    assert raw_wins[0] > 2 * 40  # the hub takes far more than its own share before
    assert balanced_wins[0] < raw_wins[0]
    assert balanced_wins.max() - balanced_wins.min() < raw_wins.max() - raw_wins.min()
    assert ((raw + offsets).argmax(1) == labels).mean() > (raw.argmax(1) == labels).mean()


def test_a_balanced_world_needs_no_offsets() -> None:
    # Every query exactly halfway between two items, in equal numbers: nothing to correct.
    sims = np.array([[0.9, 0.5], [0.5, 0.9]] * 50)
    assert np.allclose(offsets_from_similarities(sims), 0.0, atol=1e-5)


def test_offsets_are_centred_and_stay_finite_and_bounded() -> None:
    rng = np.random.default_rng(3)
    sims = rng.uniform(0.2, 0.8, size=(200, 12))
    assert abs(float(offsets_from_similarities(sims).mean())) < 1e-5
    # A product no query comes near (a blank image): lifted, but never past MAX_OFFSET.
    sims = np.array([[1.0, 0.2, -1.0]] * 30 + [[0.2, 1.0, -1.0]] * 3)
    offsets = offsets_from_similarities(sims, temperature=0.01, iterations=500)
    assert np.isfinite(offsets).all()
    assert offsets[0] < offsets[1] and float(offsets[2]) == pytest.approx(MAX_OFFSET)


@pytest.mark.parametrize(
    ("queries", "gallery", "message"),
    [
        (np.zeros((0, 4)), np.ones((2, 4)), "at least one"),
        (np.ones((3, 4)), np.ones((2, 5)), "must be"),
    ],
)
def test_bad_shapes_are_refused(queries: np.ndarray, gallery: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_offsets(queries, gallery)


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError, match="temperature"):
        offsets_from_similarities(np.ones((2, 2)), temperature=0.0)
