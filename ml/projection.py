"""Compact vectors: a linear projection fitted on a shop's own catalog features, PCA or learned
whitening.

The pretrained model's pooled features are 1280-d; a linear map to 256 or fewer keeps the
neighbours a search finds (measured on the Grocery Store split: bench/compact.py,
docs/benchmarks.md) and makes the index 5x smaller and brute-force search about 3x faster. The map
lives inside the exported model (``ml.model``: a Dense layer before the final L2 normalisation), so
every runtime emits the compact vector; this module only fits it and applies it in numpy.

Fitting is on L2-normalised features (what the raw model emits), and so is applying: the model
normalises the pooled features before the projection too, so ``apply_projection`` of the raw
model's output, L2-normalised, is what the compact model emits.

Learned whitening (Radenovic et al., "Fine-tuning CNN image retrieval with no human annotation", 2018)
needs pairs of photos of one product, so it is fitted only on catalogs where most products have two or
more photos (search/services/compact.py decides): the features are centred, whitened by the covariance of the differences between matching
photos (what varies between two photos of one product is shrunk, so what tells products apart
dominates), then rotated by the PCA of the whitened catalog, keeping the leading dimensions. It is
still ``y = x @ matrix + bias``, so it lives in the model exactly as PCA does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Projection:
    """``y = x @ matrix + bias``; ``bias`` is ``-mean @ matrix`` when centred, else zeros."""

    # float32 [in_dim, out_dim]: orthonormal columns (principal directions) for "pca"; the whitening
    # then the rotation for "whitening" (columns neither unit nor orthogonal).
    matrix: np.ndarray
    bias: np.ndarray  # float32 [out_dim]
    explained: float  # share of the (uncentred, centred or whitened) variance the kept directions hold
    centered: bool = False
    samples: int = 0
    method: str = "pca"  # or "whitening" (learned from pairs of one product's photos)
    ridge: float = 0.0  # whitening: added to the pair covariance, relative to its mean eigenvalue
    pairs: int = 0  # whitening: matching pairs the covariance was averaged over
    paired_products: int = 0  # whitening: products with two or more photos in the fit

    @property
    def in_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.matrix.shape[1])

    def summary(self) -> dict[str, Any]:
        """What a model version records about its projection (JSON-able, no weights)."""
        out: dict[str, Any] = {
            "method": self.method,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "centered": self.centered,
            "samples": self.samples,
            "explained": round(float(self.explained), 4),
        }
        if self.method == "whitening":
            out.update(ridge=self.ridge, pairs=self.pairs, paired_products=self.paired_products)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "matrix": self.matrix,
            "bias": self.bias,
            "explained": np.float64(self.explained),
            "centered": np.bool_(self.centered),
            "samples": np.int64(self.samples),
            "method": np.str_(self.method),
            "ridge": np.float64(self.ridge),
            "pairs": np.int64(self.pairs),
            "paired_products": np.int64(self.paired_products),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Projection:
        matrix = np.asarray(data["matrix"], np.float32)
        bias = np.asarray(data["bias"], np.float32)
        if matrix.ndim != 2 or bias.shape != (matrix.shape[1],):
            raise ValueError(f"projection matrix {matrix.shape} and bias {bias.shape} do not agree")
        return cls(
            matrix=matrix,
            bias=bias,
            explained=float(data["explained"]),
            centered=bool(data["centered"]) if "centered" in data else False,
            samples=int(data["samples"]) if "samples" in data else 0,
            # Projections saved before whitening existed are PCA.
            method=str(data["method"]) if "method" in data else "pca",
            ridge=float(data["ridge"]) if "ridge" in data else 0.0,
            pairs=int(data["pairs"]) if "pairs" in data else 0,
            paired_products=int(data["paired_products"]) if "paired_products" in data else 0,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Projection:
        with np.load(Path(path)) as data:
            return cls.from_dict({key: data[key] for key in data.files})


def _l2(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norms, 1e-12))


def fit_projection(features: np.ndarray, dim: int = 256, *, center: bool) -> Projection:
    """PCA of the L2-normalised ``features`` [N, in_dim]: the leading ``min(dim, N, in_dim)`` directions.

    ``center=False`` takes the directions of the raw second moment (no mean removed), so a vector's
    projection keeps its component along the mean, which all products share; whether that or
    centring ranks better is a measured choice (bench/compact.py).
    """
    x = np.asarray(features)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"features must be [N, D] with N >= 1, got shape {x.shape}")
    if dim < 1:
        raise ValueError("dim must be >= 1")
    x = _l2(x)
    mean = x.mean(axis=0) if center else np.zeros(x.shape[1])
    centred = x - mean
    # Thin SVD: the right singular vectors are the principal directions, ordered by variance.
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    out_dim = min(int(dim), x.shape[0], x.shape[1])
    matrix = vt[:out_dim].T
    energy = singular**2
    explained = float(energy[:out_dim].sum() / energy.sum()) if energy.sum() > 0 else 1.0
    return Projection(
        matrix=matrix.astype(np.float32),
        bias=(-mean @ matrix).astype(np.float32),
        explained=explained,
        centered=bool(center),
        samples=int(x.shape[0]),
    )


def paired_groups(products: list[Any] | np.ndarray) -> tuple[list[np.ndarray], int]:
    """The indices of each product's photos, for products with two or more, and how many matching
    pairs they make (n * (n - 1) / 2 per product)."""
    keys = np.asarray(products)
    if len(keys) == 0:
        return [], 0
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(counts)[:-1])
    groups = [g for g in groups if len(g) >= 2]
    return groups, int(sum(len(g) * (len(g) - 1) // 2 for g in groups))


def fit_whitening(
    features: np.ndarray, products: list[Any] | np.ndarray, dim: int = 256, *, ridge: float
) -> Projection:
    """Learned whitening of the L2-normalised ``features`` [N, in_dim] from the pairs of photos that
    share a product in ``products`` [N] (Radenovic et al. 2018); raises ValueError when no product has
    two photos (the caller falls back to ``fit_projection``).

    The pair covariance is ``mean over pairs (x_i - x_j)(x_i - x_j)^T``, summed per product as
    ``n * scatter around the product's mean`` (the same sum, without listing n^2 pairs). ``ridge``
    times its mean eigenvalue is added before the inverse square root: with fewer pairs than
    dimensions the covariance is singular, and directions no pair varied along would otherwise be
    blown up without bound.
    """
    x = np.asarray(features)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"features must be [N, D] with N >= 1, got shape {x.shape}")
    if len(products) != len(x):
        raise ValueError(f"{len(x)} features but {len(products)} product labels")
    if dim < 1:
        raise ValueError("dim must be >= 1")
    if ridge < 0:
        raise ValueError("ridge must be >= 0")
    groups, pairs = paired_groups(products)
    if not pairs:
        raise ValueError("learned whitening needs a product with two or more photos")
    x = _l2(x)
    d = x.shape[1]
    scatter = np.zeros((d, d))
    for group in groups:
        within = x[group] - x[group].mean(axis=0)
        scatter += len(group) * (within.T @ within)
    covariance = scatter / pairs
    covariance += (ridge * np.trace(covariance) / d + 1e-12) * np.eye(d)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    whiten = (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T  # symmetric C^-1/2
    mean = x.mean(axis=0)
    whitened = (x - mean) @ whiten
    _, singular, vt = np.linalg.svd(whitened, full_matrices=False)
    out_dim = min(int(dim), x.shape[0], d)
    matrix = whiten @ vt[:out_dim].T
    energy = singular**2
    explained = float(energy[:out_dim].sum() / energy.sum()) if energy.sum() > 0 else 1.0
    return Projection(
        matrix=matrix.astype(np.float32),
        bias=(-mean @ matrix).astype(np.float32),
        explained=explained,
        centered=True,
        samples=int(x.shape[0]),
        method="whitening",
        ridge=float(ridge),
        pairs=pairs,
        paired_products=len(groups),
    )


def apply_projection(features: np.ndarray, projection: Projection) -> np.ndarray:
    """Project L2-normalised ``features`` (normalised here if they are not): float32 [N, out_dim],
    not normalised again (the model's last layer, and cosine search, do that)."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[1] != projection.in_dim:
        raise ValueError(f"features must be [N, {projection.in_dim}], got shape {x.shape}")
    out = np.asarray(_l2(x) @ projection.matrix.astype(np.float64) + projection.bias)
    return out.astype(np.float32)


def sample_per_product(products: list[Any] | np.ndarray, cap: int, *, seed: int = 0) -> np.ndarray:
    """Indices of up to ``cap`` items: one photo of every product first (in random order), then more
    photos drawn at random, so every product shapes the projection before any product's tenth photo.
    """
    products = np.asarray(products)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(products))
    seen: set[Any] = set()
    first: list[int] = []
    rest: list[int] = []
    for i in order:
        key = products[i].item() if hasattr(products[i], "item") else products[i]
        (rest if key in seen else first).append(int(i))
        seen.add(key)
    return np.array((first + rest)[: max(0, int(cap))], dtype=np.int64)


def sample_in_pairs(products: list[Any] | np.ndarray, cap: int, *, seed: int = 0) -> np.ndarray:
    """Indices of up to ``cap`` items for a whitening fit: products in random order, each with up to
    ``max(2, cap // products)`` of its photos, then the photos left over at random until ``cap``.

    ``sample_per_product`` takes one photo of every product before any second one, so a catalog with
    more products than ``cap`` would give no pairs at all; here every product sampled brings two
    photos when it has them, and a catalog with few products still fills the cap.
    """
    products = np.asarray(products)
    cap = max(0, int(cap))
    rng = np.random.default_rng(seed)
    by_product: dict[Any, list[int]] = {}
    for i in rng.permutation(len(products)):
        key = products[i].item() if hasattr(products[i], "item") else products[i]
        by_product.setdefault(key, []).append(int(i))
    if not by_product:
        return np.zeros(0, dtype=np.int64)
    # Products in an order of their own: the order the photos came in would put a product with many
    # photos first more often, and a capped sample would then overstate how many products have pairs.
    keys = list(by_product)
    groups = [by_product[keys[j]] for j in rng.permutation(len(keys))]
    quota = max(2, cap // len(groups))
    first = [i for photos in groups for i in photos[:quota]]
    rest = [i for photos in groups for i in photos[quota:]]
    rest = [rest[j] for j in rng.permutation(len(rest))]
    return np.array((first + rest)[:cap], dtype=np.int64)
