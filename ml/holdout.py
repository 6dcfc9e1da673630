"""Which photos validate a training run, so that the validation figure predicts what shoppers get.

A shop's photos of one product are often frames of one shoot: holding out random photos leaves a
near-twin of each in training, and validation then reads far better than the model is (on the
Grocery catalog, random photos gave val Recall@1 0.91-0.94 for a model that scored 0.77 on new
store photos). So photos are held out in groups of look-alikes: each product's photos are clustered by
appearance and whole clusters go to validation.

A catalog with one photo per product has nothing to hold out: no held-out photo would have a
positive left. It is validated on fresh augmented views of its photos instead (a crop, a flip,
other light: what a shopper's photo of the product is like), against all of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# A product needs this many photos before some can be held out and a positive still remains.
MIN_PHOTOS_TO_HOLD_OUT = 4


def pooled(activations: Any, batch: int = 1024) -> np.ndarray:
    """One unit vector per image from [N, h, w, c] activations (their spatial mean): what clustering
    compares. Read ``batch`` rows at a time, so activations kept on disk stay there."""
    parts = [
        np.asarray(activations[s : s + batch]).astype(np.float32).mean(axis=(1, 2))
        for s in range(0, len(activations), batch)
    ]
    vectors = np.concatenate(parts) if parts else np.zeros((0, int(activations.shape[-1])), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms == 0, 1.0, norms))


def _kmeans(vectors: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 20) -> np.ndarray:
    centres = vectors[rng.choice(len(vectors), size=k, replace=False)]
    assign = np.zeros(len(vectors), dtype=np.int64)
    for _ in range(iterations):
        assign = np.argmax(vectors @ centres.T, axis=1)  # cosine: the vectors are unit length
        for j in range(k):
            members = vectors[assign == j]
            if len(members):
                centre = members.mean(axis=0)
                centres[j] = centre / max(float(np.linalg.norm(centre)), 1e-12)
    return assign


def group_holdout(labels: np.ndarray, vectors: np.ndarray, *, val_fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of validation photos: for each product with at least MIN_PHOTOS_TO_HOLD_OUT
    photos, its photos are clustered into about ``1 / val_fraction`` look-alike groups (k-means on
    ``vectors``) and whole groups are held out, in random order, until about ``val_fraction`` of them
    are; at least one group always stays in training."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < MIN_PHOTOS_TO_HOLD_OUT:
            continue
        k = int(np.clip(round(1.0 / val_fraction), 2, len(members) // 2))
        groups = _kmeans(vectors[members], k, rng)
        order = [g for g in rng.permutation(k) if np.any(groups == g)]
        target = max(1, round(val_fraction * len(members)))
        taken = 0
        for group in order[:-1]:  # never the last group: the product keeps training photos
            if taken >= target:
                break
            chosen = members[groups == group]
            held[chosen] = True
            taken += len(chosen)
    return held


def holdable(labels: np.ndarray) -> bool:
    """Whether any product has enough photos to hold some out."""
    return bool(len(labels)) and int(np.bincount(labels).max()) >= MIN_PHOTOS_TO_HOLD_OUT
