"""The Embedder interface every runtime implements, and an exported version's metadata."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

import numpy as np

from ml.export import METADATA_DIR, METADATA_FILE
from ml.serving.errors import BadEmbedding, InvalidInput


class Embedder(ABC):
    """``embed(uint8 [N, S, S, 3]) -> float32 [N, D]``; ``image_size`` is S, ``dim`` is D."""

    max_batch: int = 32

    @property
    @abstractmethod
    def image_size(self) -> int: ...

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def ready(self) -> bool:
        """True when the model is loaded/served and :meth:`embed` can be expected to succeed."""

    @abstractmethod
    def _embed_batch(self, images: np.ndarray) -> np.ndarray: ...

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = self._check_images(images)
        if images.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Capped batches bound the memory per call and the gRPC message size (224 px x 32 = 4.8 MB).
        parts = []
        for start in range(0, images.shape[0], self.max_batch):
            chunk = images[start : start + self.max_batch]
            parts.append(self._check_output(self._embed_batch(chunk), chunk.shape[0]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:  # noqa: B027 - optional hook, most embedders hold nothing
        """Release resources (channels); the embedder must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_images(self, images: Any) -> np.ndarray:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise InvalidInput("images must be a numpy uint8 array (use ml.preprocess)")
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise InvalidInput(f"images must be [N, {size}, {size}, 3], got {list(images.shape)}")
        return np.ascontiguousarray(images)

    def _check_output(self, out: np.ndarray, n: int) -> np.ndarray:
        if out.shape != (n, self.dim):
            raise BadEmbedding(f"model returned shape {list(out.shape)}, expected [{n}, {self.dim}]")
        if not np.all(np.isfinite(out)):
            raise BadEmbedding("model returned NaN or infinite values")
        return out.astype(np.float32, copy=False)


def read_model_metadata(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``assets.extra/lookalike.json`` of an exported version, or {} if it has none."""
    path = Path(model_dir) / METADATA_DIR / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
