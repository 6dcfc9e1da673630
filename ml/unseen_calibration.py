"""Fitting a trained model's "same" and "no match" thresholds on products a model never saw.

Taking a photo's own product out of the gallery is a poor stand-in for a product the shop does not
sell when the model was trained on that product: training pushed that product's photos away from every
other product, so they score lower against the rest than photos of a product nobody trained on. On the
Grocery split (2026-11-30) the threshold fitted that way answered "no match" for 0.679 of the photos of
products left out of the shop, against a 0.90 target.

So a trained run trains a second top with a share of the products left out (the same recipe and cache,
for the epochs the first run kept) and fits the thresholds on that model's answers: the other
products' held-out photos against the gallery stand for shoppers' photos of products the shop sells,
and every photo of a left-out product for a product it does not sell. The thresholds then serve the
first model, trained on every product; the two differ only in which products they saw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.calibration import first_hits

# Below this many products, leaving some out would leave too few to answer for the rest: such a run
# falls back to the own-product stand-in.
MIN_PRODUCTS = 10
# At least this many products are left out, so that "no match" is not measured on one product's look.
MIN_LEFT_OUT = 3


def choose_left_out(
    gallery_labels: np.ndarray, query_labels: np.ndarray, fraction: float, seed: int
) -> np.ndarray:
    """The products a calibration run leaves out: ``fraction`` of the gallery's products (at least
    MIN_LEFT_OUT), drawn at random but so that at least half of the products with held-out queries
    stay in. Empty when ``fraction`` is 0 or the catalog has fewer than MIN_PRODUCTS products."""
    products = np.unique(gallery_labels)
    queried = set(np.unique(query_labels).tolist()) & set(products.tolist())
    floor = max(2, (len(queried) + 1) // 2)  # products with queries that must stay
    if fraction <= 0 or len(products) < MIN_PRODUCTS or len(queried) < floor:
        return np.zeros(0, dtype=products.dtype)
    count = max(MIN_LEFT_OUT, round(fraction * len(products)))
    chosen: list[Any] = []
    queried_left = len(queried)
    for product in np.random.default_rng([seed, 104729]).permutation(products):
        if len(chosen) == count:
            break
        if product.item() in queried:
            if queried_left <= floor:
                continue
            queried_left -= 1
        chosen.append(product)
    return np.sort(np.asarray(chosen, dtype=products.dtype))


def scored_with_left_out(
    queries: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
    left_out_queries: np.ndarray,
) -> dict[str, np.ndarray]:
    """What ``ml.calibration.fit`` takes: the in-catalog side from ``queries`` (products in the
    gallery), the out-of-catalog side from ``left_out_queries`` (photos of products the gallery and
    the model never had)."""
    top, in_score, in_margin = first_hits(queries, gallery, gallery_labels)
    _, out_score, out_margin = first_hits(left_out_queries, gallery, gallery_labels)
    return {
        "in_score": in_score,
        "in_margin": in_margin,
        "in_correct": top == query_labels,
        "out_score": np.asarray(out_score, np.float32),
        "out_margin": np.asarray(out_margin, np.float32),
    }
