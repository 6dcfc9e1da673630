"""Compact vectors: a PCA projection fitted on a shop's own catalog features.

The pretrained model's pooled features are 1280-d; a linear map to 256 or fewer keeps the
neighbours a search finds (measured on the Grocery Store split: bench/compact.py,
docs/benchmarks.md) and makes the index 5x smaller and brute-force search about 3x faster. The map
lives inside the exported model (``ml.model``: a Dense layer before the final L2 normalisation), so
every runtime emits the compact vector; this module only fits it and applies it in numpy.

Fitting is on L2-normalised features (what the raw model emits), and so is applying: the model
normalises the pooled features before the projection too, so ``apply_projection`` of the raw
model's output, L2-normalised, is what the compact model emits.
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

    matrix: np.ndarray  # float32 [in_dim, out_dim], orthonormal columns (principal directions)
    bias: np.ndarray  # float32 [out_dim]
    explained: float  # share of the (uncentred or centred) variance the kept directions hold
    centered: bool = False
    samples: int = 0

    @property
    def in_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.matrix.shape[1])

    def summary(self) -> dict[str, Any]:
        """What a model version records about its projection (JSON-able, no weights)."""
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "centered": self.centered,
            "samples": self.samples,
            "explained": round(float(self.explained), 4),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "matrix": self.matrix,
            "bias": self.bias,
            "explained": np.float64(self.explained),
            "centered": np.bool_(self.centered),
            "samples": np.int64(self.samples),
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
    return x / np.maximum(norms, 1e-12)


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


def apply_projection(features: np.ndarray, projection: Projection) -> np.ndarray:
    """Project L2-normalised ``features`` (normalised here if they are not): float32 [N, out_dim],
    not normalised again (the model's last layer, and cosine search, do that)."""
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[1] != projection.in_dim:
        raise ValueError(f"features must be [N, {projection.in_dim}], got shape {x.shape}")
    out = _l2(x) @ projection.matrix.astype(np.float64) + projection.bias
    return out.astype(np.float32)


def sample_per_product(products: list[Any] | np.ndarray, cap: int, *, seed: int = 0) -> np.ndarray:
    """Indices of up to ``cap`` items: one photo of every product first (in random order), then more
    photos drawn at random, so every product shapes the projection before any product's tenth photo.
    """
    products = np.asarray(products)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(products))
    seen: set[Any] = set()
    first, rest = [], []
    for i in order:
        key = products[i].item() if hasattr(products[i], "item") else products[i]
        (rest if key in seen else first).append(int(i))
        seen.add(key)
    return np.array((first + rest)[: max(0, int(cap))], dtype=np.int64)
