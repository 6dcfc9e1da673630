"""Balanced answers for a catalog with one photo per product: a score offset per product, fitted on
shoppers' unlabelled query vectors.

With one studio photo per product, a few catalog images lie close to most shoppers' photos (hubs: a
plain white pack, a common colour) and win searches that belong to others; the rest are rarely first.
Balancing asks that, over the shoppers' photos the shop has seen, each product be the likely answer
about equally often: an entropic optimal transport (Sinkhorn-Knopp) between the query vectors and the
catalog's, with uniform mass on both sides. Its column scaling, on the log scale and times the
temperature, is an offset per product that is added to the cosine similarity at search time: hubs get a
negative one, products nobody's photo comes near a positive one. No labels and no clicks are needed.

Measured on the Grocery split (docs/benchmarks.md, "One photo per product"): chosen on the val photos,
the test photos then reported once. A catalog with many photos per product lost with it, so the
search service applies it to one-photo catalogs only.
"""

from __future__ import annotations

import numpy as np

# Chosen on the val photos (0.02 to 0.08 were within 0.02 of each other; 0.05 was best).
TEMPERATURE = 0.05
ITERATIONS = 100
# An offset is kept within this: a product no shopper's photo comes near (a blank or broken image) would
# otherwise be lifted into every answer. The Grocery fit's offsets stay within +-0.11.
MAX_OFFSET = 0.25


def fit_offsets(
    queries: np.ndarray,
    gallery: np.ndarray,
    *,
    temperature: float = TEMPERATURE,
    iterations: int = ITERATIONS,
) -> np.ndarray:
    """One offset per gallery row, from ``queries`` [N, d] and ``gallery`` [M, d], both L2-normalised."""
    queries = np.asarray(queries, dtype=np.float32)
    gallery = np.asarray(gallery, dtype=np.float32)
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be [N, d] and [M, d]")
    return offsets_from_similarities(queries @ gallery.T, temperature=temperature, iterations=iterations)


def offsets_from_similarities(
    similarities: np.ndarray, *, temperature: float = TEMPERATURE, iterations: int = ITERATIONS
) -> np.ndarray:
    """One offset per column of ``similarities`` [N queries, M products] (cosines, at most 1): ``temperature
    * log(c)`` for the Sinkhorn column scaling ``c`` of ``exp((similarities - 1) / temperature)``, centred
    on 0 and kept within ``MAX_OFFSET``."""
    similarities = np.asarray(similarities)
    if similarities.ndim != 2 or similarities.size == 0:
        raise ValueError("balancing needs at least one query and one product")
    if temperature <= 0:
        raise ValueError("temperature must be positive")
    # Similarities are at most 1, so the kernel is at most 1 and at least exp(-2 / temperature): in
    # float64 neither overflows nor vanishes at the temperatures used here. Built in place: one array
    # the size of the similarities (3,000 searches x 20,000 products: 480 MB).
    kernel = np.minimum(similarities, 1.0, dtype=np.float64)
    kernel -= 1.0
    kernel /= temperature
    np.exp(kernel, out=kernel)
    cols = np.ones(kernel.shape[1])
    for _ in range(iterations):
        rows = 1.0 / np.maximum(kernel @ cols, np.finfo(np.float64).tiny)
        cols = 1.0 / np.maximum(kernel.T @ rows, np.finfo(np.float64).tiny)
        # The scalings are defined up to a constant factor; keeping their geometric mean at 1 keeps
        # them inside float64 however long the iteration runs.
        cols /= np.exp(np.log(cols).mean())
    offsets: np.ndarray = temperature * np.log(cols)
    centred: np.ndarray = np.clip(offsets - offsets.mean(), -MAX_OFFSET, MAX_OFFSET).astype(np.float32)
    return centred
