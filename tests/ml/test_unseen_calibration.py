"""Which products a calibration run leaves out, and what the thresholds are fitted on."""

from __future__ import annotations

import numpy as np

from ml.calibration import fit
from ml.unseen_calibration import MIN_LEFT_OUT, MIN_PRODUCTS, choose_left_out, scored_with_left_out


def test_a_fifth_of_the_products_is_left_out_and_the_choice_repeats_per_seed():
    gallery = np.repeat(np.arange(30), 3)
    queries = np.arange(30)
    chosen = choose_left_out(gallery, queries, 0.2, seed=1)
    assert len(chosen) == 6 and set(chosen) <= set(range(30))
    np.testing.assert_array_equal(chosen, choose_left_out(gallery, queries, 0.2, seed=1))
    assert not np.array_equal(chosen, choose_left_out(gallery, queries, 0.2, seed=2))


def test_small_catalogs_and_a_zero_share_leave_nothing_out():
    assert len(choose_left_out(np.arange(MIN_PRODUCTS - 1), np.arange(MIN_PRODUCTS - 1), 0.5, seed=0)) == 0
    assert len(choose_left_out(np.arange(40), np.arange(40), 0.0, seed=0)) == 0
    # At the smallest size, still enough products left out to say something.
    assert (
        len(choose_left_out(np.arange(MIN_PRODUCTS), np.arange(MIN_PRODUCTS), 0.01, seed=0)) == MIN_LEFT_OUT
    )


def test_half_of_the_products_with_queries_always_stay():
    gallery = np.arange(20)
    queried = np.arange(4)  # only four products have held-out photos
    for seed in range(20):
        chosen = choose_left_out(gallery, queried, 0.5, seed=seed)
        assert len(chosen) == 10
        assert len(set(queried) - set(chosen)) >= 2


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_out_of_catalog_side_comes_from_the_left_out_products_photos():
    gallery = _unit(np.eye(4))
    gallery_labels = np.arange(4)
    queries = _unit([[1, 0.1, 0, 0], [0, 1, 0.1, 0]])
    # A left-out product's photo lying right on product 2's image: a confident wrong "same".
    left_out = _unit([[0, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]])
    scored = scored_with_left_out(queries, np.array([0, 1]), gallery, gallery_labels, left_out)
    assert scored["in_correct"].tolist() == [True, True]
    assert len(scored["out_score"]) == 2
    np.testing.assert_allclose(scored["out_score"], [1.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(scored["out_margin"], [1.0, 0.0], atol=1e-6)


def test_the_threshold_is_set_above_a_left_out_products_score():
    gallery = _unit(np.eye(4))
    queries = _unit([[1, 0.1, 0, 0], [0, 1, 0.1, 0]])  # in the catalog: scores 0.995
    left_out = _unit([[0, 0, 1, 0.5]])  # not in the shop, 0.894 against product 2
    scored = scored_with_left_out(queries, np.array([0, 1]), gallery, np.arange(4), left_out)
    fitted = fit(scored, min_support=1)
    assert fitted.met and fitted.no_match_unseen == 1.0
    assert float(scored["out_score"][0]) < fitted.same <= float(scored["in_score"].min())
