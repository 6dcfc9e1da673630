"""P x K batches: P products, K images of each, as a ``keras.utils.PyDataset``.

Every batch then holds K-1 positives per anchor, which pair and batch-wise metric losses need;
plain random batches over 81+ products would rarely contain two photos of one product. A product
with fewer than K photos (a catalog with one picture) repeats them, and augmentation turns the
repeats into different views, so the single photo still has positives.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from ml.augment import Augmenter


class PKSampler(keras.utils.PyDataset):
    """Yields ``(images float32 [P*K, S, S, 3] in 0..255, labels int32 [P*K])``.

    Seeded: batch ``i`` of epoch ``e`` is a pure function of (seed, e, i), so runs repeat exactly
    and worker threads may build batches in any order.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        p: int = 16,
        k: int = 4,
        augmenter: Augmenter | None = None,
        steps_per_epoch: int | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        if k < 1 or p < 2:
            raise ValueError("a P x K batch needs p >= 2 and k >= 1")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int32)
        self.classes = np.unique(self.labels)
        if len(self.classes) < 2:
            raise ValueError("P x K sampling needs images of at least two products")
        self.p = min(p, len(self.classes))
        self.k = k
        self.augmenter = augmenter
        self.seed = seed
        self.epoch = 0
        self.by_class = {int(c): np.flatnonzero(self.labels == c) for c in self.classes}
        self.steps = steps_per_epoch or max(1, math.ceil(len(self.labels) / (self.p * self.k)))

    def __len__(self) -> int:
        return self.steps

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    def batch_indices(self, index: int, epoch: int | None = None) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else epoch, index])
        chosen = rng.choice(self.classes, size=self.p, replace=False)
        out = []
        for c in chosen:
            pool = self.by_class[int(c)]
            out.append(rng.choice(pool, size=self.k, replace=len(pool) < self.k))
        return np.concatenate(out)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.batch_indices(index)
        if self.augmenter is None:
            batch = self.images[idx]
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            batch = np.stack([self.augmenter(self.images[i], rng) for i in idx])
        return batch.astype(np.float32), self.labels[idx]

    def on_epoch_end(self) -> None:
        self.epoch += 1
