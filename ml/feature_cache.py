"""Activations of a frozen network bottom, computed once: a few augmented views of every training
image, and the plain images for validation.

Training the top of a network on cached activations costs a fraction of training through the whole
network on these CPUs: the bottom's forward pass, most of a step's work, runs once per view instead of
once per epoch (Grocery, EfficientNet-Lite0 at 224 px, 2 cores: a whole epoch of the top took about
the time of caching one view of every photo). Activations are kept as float16, half the memory of
float32; the top computes in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ml.augment import Augmenter

BATCH = 64


@dataclass
class CachedViews:
    """``features[i]`` is view number ``view[i]`` (0: the image itself) of source image ``source[i]``,
    whose label is ``labels[i]``."""

    features: np.ndarray  # float16 [M, h, w, c]
    source: np.ndarray  # int32 [M]
    labels: np.ndarray  # int32 [M]
    view: np.ndarray  # int16 [M]

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)


def activations(
    bottom: keras.Model,
    images: np.ndarray,
    *,
    flip: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The bottom's float16 activations of uint8 images (horizontally mirrored with ``flip``)."""
    out = []
    for start in range(0, len(images), BATCH):
        batch = images[start : start + BATCH]
        if flip:
            batch = batch[:, :, ::-1]
        out.append(np.asarray(bottom.predict_on_batch(batch.astype(np.float32)), dtype=np.float16))
        if on_batch is not None:
            on_batch(len(batch))
    if not out:
        shape = tuple(int(d) for d in bottom.output_shape[1:])
        return np.zeros((0, *shape), np.float16)
    return np.concatenate(out)


def views_per_image(labels: np.ndarray, views: int, min_views_per_product: int) -> np.ndarray:
    """How many views to cache of each image: ``views``, more for products with few photos, so that
    every product has at least ``min_views_per_product`` (a product with one photo gets its positives
    from views alone, and a catalog image among many shop photos would otherwise barely be seen)."""
    counts = np.bincount(labels)
    per_image = np.ceil(min_views_per_product / counts[labels]).astype(np.int32)
    return np.asarray(np.maximum(views, per_image))


def cache_views(
    bottom: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    per_image: np.ndarray,
    *,
    augmenter: Augmenter | None,
    seed: int,
    on_batch: Callable[[int], None] | None = None,
    threads: int = 2,
) -> CachedViews:
    """Activations of ``per_image[i]`` views of each image: the image itself first, then augmented
    views. Augmenting (Pillow, which releases the GIL) runs on ``threads`` threads while the model
    computes the previous batch."""
    jobs: list[tuple[int, int]] = [
        (int(i), v) for v in range(int(per_image.max(initial=0))) for i in np.flatnonzero(per_image > v)
    ]
    source = np.array([i for i, _ in jobs], dtype=np.int32)
    view_number = np.array([v for _, v in jobs], dtype=np.int16)

    def view(job: tuple[int, int]) -> np.ndarray:
        index, number = job
        if number == 0 or augmenter is None:
            return np.asarray(images[index])
        rng = np.random.default_rng([seed, index, number])
        return augmenter(images[index], rng)

    parts = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        batches = [jobs[s : s + BATCH] for s in range(0, len(jobs), BATCH)]
        pending = pool.map(lambda b: np.stack([view(j) for j in b]), batches) if batches else iter(())
        for pixels in pending:
            parts.append(np.asarray(bottom.predict_on_batch(pixels.astype(np.float32)), dtype=np.float16))
            if on_batch is not None:
                on_batch(len(pixels))
    shape = tuple(int(d) for d in bottom.output_shape[1:])
    features = np.concatenate(parts) if parts else np.zeros((0, *shape), np.float16)
    return CachedViews(
        features=features, source=source, labels=labels[source].astype(np.int32), view=view_number
    )


class CachedPKSampler(keras.utils.PyDataset):
    """P x K batches of cached views: P products, K views of each (drawn across the product's images),
    each mirrored left-right with probability 1/2 (mirroring the activations, a cheap stand-in for
    mirroring the image). Seeded like ml.sampler.PKSampler: batch i of epoch e is a pure function of
    (seed, e, i).

    ``companions`` maps a product to products it is confused with (shoppers skipped them for it): when
    a batch draws the product, up to half its other slots go to those, so the loss sees the hard
    negatives side by side instead of by chance."""

    def __init__(
        self,
        cache: CachedViews,
        *,
        p: int,
        k: int,
        steps_per_epoch: int | None,
        seed: int,
        companions: dict[int, list[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        self.classes = np.unique(cache.labels)
        if len(self.classes) < 2:
            raise ValueError("P x K sampling needs views of at least two products")
        self.p = min(p, len(self.classes))
        self.k = k
        self.seed = seed
        self.epoch = 0
        self.by_class = {int(c): np.flatnonzero(cache.labels == c) for c in self.classes}
        present = set(self.by_class)
        self.companions = {
            a: sorted({b for b in bs if b in present and b != a})
            for a, bs in (companions or {}).items()
            if a in present
        }
        images = len(np.unique(cache.source))
        self.steps = steps_per_epoch or max(1, images // (self.p * self.k))

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        chosen = self._products(rng)
        rows = np.concatenate(
            [
                rng.choice(self.by_class[int(c)], size=self.k, replace=len(self.by_class[int(c)]) < self.k)
                for c in chosen
            ]
        )
        batch = self.cache.features[rows].astype(np.float32)
        mirror = rng.random(len(rows)) < 0.5
        batch[mirror] = batch[mirror, :, ::-1]
        return batch, self.cache.labels[rows]

    def _products(self, rng: np.random.Generator) -> np.ndarray:
        if not self.companions:
            return rng.choice(self.classes, size=self.p, replace=False)
        chosen: list[int] = []
        for label in rng.permutation(self.classes):
            if len(chosen) >= self.p:
                break
            if int(label) in chosen:
                continue
            chosen.append(int(label))
            hard = [c for c in self.companions.get(int(label), []) if c not in chosen]
            room = max(0, min(len(hard), (self.p - len(chosen)) // 2))
            if room:
                chosen.extend(int(c) for c in rng.choice(hard, size=room, replace=False))
        return np.asarray(chosen[: self.p])

    def on_epoch_end(self) -> None:
        self.epoch += 1
