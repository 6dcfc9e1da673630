"""Validation photos held out in groups of look-alikes."""

from __future__ import annotations

import numpy as np

from ml.holdout import group_holdout, holdable


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_whole_look_alike_groups_are_held_out_and_every_product_keeps_training_photos():
    rng = np.random.default_rng(0)
    # Product 0: two shoots of 5 near-identical frames each; product 1: 3 photos (too few to hold out).
    shoot_a = rng.normal(size=(1, 16)) + rng.normal(scale=0.01, size=(5, 16))
    shoot_b = rng.normal(size=(1, 16)) + rng.normal(scale=0.01, size=(5, 16))
    vectors = _unit(np.concatenate([shoot_a, shoot_b, rng.normal(size=(3, 16))]))
    labels = np.array([0] * 10 + [1] * 3)
    held = group_holdout(labels, vectors, val_fraction=0.5, seed=0)
    assert not held[10:].any()  # too few photos: all train
    assert held[:10].sum() == 5
    assert held[:5].all() != held[5:10].all()  # one whole shoot out, the other in


def test_holdable_needs_a_product_with_enough_photos():
    assert not holdable(np.array([0, 1, 2, 2]))
    assert holdable(np.array([0, 1, 1, 1, 1]))
    assert not holdable(np.array([], dtype=np.int64))
