"""Activations of a frozen network bottom, computed once: a few augmented views of every training
image, and the plain images for validation.

Training the top of a network on cached activations costs a fraction of training through the whole
network on these CPUs: the bottom's forward pass, most of a step's work, runs once per view instead of
once per epoch (Grocery, EfficientNet-Lite0 at 224 px, 2 cores: a whole epoch of the top took about
the time of caching one view of every photo). Activations are kept as float16, half the memory of
float32; the top computes in float32. Given a ``spill`` path they go to a file (ml/disk_array.py)
instead of memory, so a large catalog's cache costs disk, not RAM.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml.augment import Augmenter
from ml.disk_array import DiskArray

BATCH = 64


@dataclass
class CachedViews:
    """``features[i]`` is view number ``view[i]`` (0: the image itself) of source image ``source[i]``,
    whose label is ``labels[i]``."""

    features: np.ndarray | DiskArray  # float16 [M, h, w, c]
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
    images: Any,
    *,
    flip: bool = False,
    on_batch: Callable[[int], None] | None = None,
    spill: Path | None = None,
) -> np.ndarray | DiskArray:
    """The bottom's float16 activations of uint8 images (horizontally mirrored with ``flip``); in a
    file at ``spill`` when given. ``images`` is anything sliceable into uint8 batches."""
    sink = _Sink(bottom, spill)
    for start in range(0, len(images), BATCH):
        batch = np.asarray(images[start : start + BATCH])
        if flip:
            batch = batch[:, :, ::-1]
        sink.add(bottom.predict_on_batch(batch.astype(np.float32)))
        if on_batch is not None:
            on_batch(len(batch))
    return sink.result()


class _Sink:
    """Collects float16 activation batches in memory, or appends them to a file at ``spill``."""

    def __init__(self, bottom: keras.Model, spill: Path | None) -> None:
        self.shape = tuple(int(d) for d in bottom.output_shape[1:])
        self.disk = DiskArray(spill, self.shape, np.float16) if spill is not None else None
        self.parts: list[np.ndarray] = []

    def add(self, batch: Any) -> None:
        values = np.asarray(batch, dtype=np.float16)
        if self.disk is not None:
            self.disk.append(values)
        else:
            self.parts.append(values)

    def result(self) -> np.ndarray | DiskArray:
        if self.disk is not None:
            return self.disk
        return np.concatenate(self.parts) if self.parts else np.zeros((0, *self.shape), np.float16)


def views_per_image(
    labels: np.ndarray, views: int, min_views_per_product: int, max_total: int | None = None
) -> np.ndarray:
    """How many views to cache of each image: ``views``, more for products with few photos, so that
    every product has at least ``min_views_per_product`` (a product with one photo gets its positives
    from views alone, and a catalog image among many shop photos would otherwise barely be seen).

    ``max_total`` bounds the sum, so caching time stops growing with the catalog: every image's count
    shrinks by the same factor, down to 2 (the photo and one augmented view, a product's one positive
    pair when it has one photo). A catalog of more than ``max_total / 2`` photos caches two each."""
    counts = np.bincount(labels)
    per_image = np.maximum(views, np.ceil(min_views_per_product / counts[labels])).astype(np.int32)
    if max_total is not None and per_image.sum() > max_total:
        floor = np.minimum(per_image, 2)

        def shrunk(factor: float) -> np.ndarray:
            return np.asarray(np.maximum(floor, np.floor(per_image * factor)), dtype=np.int32)

        # The largest factor whose total fits (the floor of 2 a photo may keep the total above it).
        low, high = 0.0, float(max_total) / float(per_image.sum())
        if shrunk(high).sum() <= max_total:
            low = high
        else:
            for _ in range(40):
                mid = (low + high) / 2
                low, high = (mid, high) if shrunk(mid).sum() <= max_total else (low, mid)
        per_image = shrunk(low)
    return np.asarray(per_image)


def cache_views(
    bottom: keras.Model,
    images: Any,
    labels: np.ndarray,
    per_image: np.ndarray,
    *,
    augmenter: Augmenter | None,
    seed: int,
    on_batch: Callable[[int], None] | None = None,
    threads: int = 2,
    spill: Path | None = None,
) -> CachedViews:
    """Activations of ``per_image[i]`` views of each image: the image itself first, then augmented
    views. Augmenting (Pillow, which releases the GIL) runs on ``threads`` threads while the model
    computes the previous batch, at most ``threads + 1`` batches ahead: augmenting is faster than the
    model, and an unbounded queue of augmented photos once held most of a large catalog's views in
    memory at once. With ``spill`` the activations go to that file."""
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
        return augmenter(np.asarray(images[index]), rng)

    sink = _Sink(bottom, spill)
    batches: Iterator[list[tuple[int, int]]] = (jobs[s : s + BATCH] for s in range(0, len(jobs), BATCH))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        ahead: deque[Future[np.ndarray]] = deque()

        def submit_next() -> None:
            batch = next(batches, None)
            if batch is not None:
                ahead.append(pool.submit(lambda b: np.stack([view(j) for j in b]), batch))

        for _ in range(max(1, threads) + 1):
            submit_next()
        while ahead:
            pixels = ahead.popleft().result()
            submit_next()
            sink.add(bottom.predict_on_batch(pixels.astype(np.float32)))
            if on_batch is not None:
                on_batch(len(pixels))
    return CachedViews(
        features=sink.result(), source=source, labels=labels[source].astype(np.int32), view=view_number
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
        exclude: np.ndarray | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cache = cache
        # ``exclude``: products whose views are never drawn (a calibration run's left-out products).
        self.classes = np.setdiff1d(np.unique(cache.labels), exclude if exclude is not None else [])
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
        images = len(np.unique(cache.source[np.isin(cache.labels, self.classes)]))
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
