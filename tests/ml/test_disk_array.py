"""Training's on-disk arrays: what is read back is what was written, in the order asked; caching views
keeps only a few batches of photos in memory; spilled photos and activations equal in-memory ones."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml.augment import Augmenter
from ml.backbone_split import split_embedding_model
from ml.data import decode_items
from ml.disk_array import DiskArray, Rows
from ml.feature_cache import BATCH, activations, cache_views
from ml.model import build_embedding_model
from tests.fixtures.images import image_bytes

SIZE = 32


def test_rows_come_back_as_written_in_any_order(tmp_path: Path) -> None:
    values = np.arange(7 * 2 * 3, dtype=np.float16).reshape(7, 2, 3)
    disk = DiskArray(tmp_path / "a.f16", (2, 3), np.float16)
    disk.append(values[:3])
    disk.append(values[3:])
    assert len(disk) == 7 and disk.shape == (7, 2, 3) and disk.nbytes == values.nbytes
    np.testing.assert_array_equal(disk[2], values[2])
    np.testing.assert_array_equal(disk[-1], values[-1])
    np.testing.assert_array_equal(disk[1:5], values[1:5])
    np.testing.assert_array_equal(disk[::3], values[::3])
    rows = np.array([6, 0, 1, 1, 4, 3])  # unsorted, a repeat, runs of neighbours
    np.testing.assert_array_equal(disk[rows], values[rows])
    mask = np.array([True, False, True, False, False, True, True])
    np.testing.assert_array_equal(disk[mask], values[mask])
    assert disk[np.array([], dtype=np.int64)].shape == (0, 2, 3)
    with pytest.raises(IndexError):
        disk[7]
    with pytest.raises(IndexError):
        disk[np.array([0, 9])]
    with pytest.raises(ValueError, match="do not fit"):
        disk.append(np.zeros((1, 3, 2), np.float16))
    lazy = Rows(disk, np.array([5, 2]))
    assert len(lazy) == 2 and lazy.shape == (2, 2, 3)
    np.testing.assert_array_equal(lazy[0:2], values[[5, 2]])
    np.testing.assert_array_equal(lazy[1], values[2])
    disk.close()
    assert not (tmp_path / "a.f16").exists()


class _Watched:
    """The real bottom network, with a count of the batches it has been given."""

    def __init__(self, bottom: Any) -> None:
        self.bottom = bottom
        self.output_shape = bottom.output_shape
        self.batches = 0

    def predict_on_batch(self, x: np.ndarray) -> Any:
        self.batches += 1
        return self.bottom.predict_on_batch(x)


class _CountingAugmenter:
    """The real augmenter, noting how many batches of views it has made ahead of the model."""

    def __init__(self, size: int, watched: _Watched) -> None:
        self.augment = Augmenter(size)
        self.watched = watched
        self.made = 0
        self.worst_lead = 0
        self.lock = threading.Lock()

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        with self.lock:
            self.made += 1
            self.worst_lead = max(self.worst_lead, -(-self.made // BATCH) - self.watched.batches)
        return self.augment(image, rng)


@pytest.fixture(scope="module")
def bottom() -> Any:
    model = build_embedding_model(
        backbone="efficientnet_lite0", weights="imagenet", image_size=SIZE, embedding_dim=8, pooling="avg"
    )
    return split_embedding_model(model, 2)[0]


def test_caching_runs_a_few_batches_ahead_of_the_model_at_most(bottom: Any, tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (40, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.arange(40) % 5
    per = np.full(40, 16, np.int32)  # 640 views, 10 batches; 600 of them augmented
    watched = _Watched(bottom)
    augmenter = _CountingAugmenter(SIZE, watched)
    cache = cache_views(watched, images, labels, per, augmenter=augmenter, seed=1, threads=2)  # type: ignore[arg-type]
    assert len(cache) == 640 and watched.batches == 10 and augmenter.made == 600
    # The model works through batch k while at most threads + 1 more are being made or waiting.
    assert augmenter.worst_lead <= 2 + 1 + 1, augmenter.worst_lead


def test_spilled_views_and_activations_equal_those_in_memory(bottom: Any, tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 256, (5, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.array([0, 0, 1, 1, 2])
    per = np.array([3, 1, 2, 2, 4], dtype=np.int32)
    kept = cache_views(bottom, images, labels, per, augmenter=Augmenter(SIZE), seed=3)
    spilled = cache_views(
        bottom, images, labels, per, augmenter=Augmenter(SIZE), seed=3, spill=tmp_path / "v.f16"
    )
    assert isinstance(spilled.features, DiskArray) and (tmp_path / "v.f16").stat().st_size == kept.nbytes
    np.testing.assert_array_equal(spilled.features[np.arange(len(kept))], kept.features)
    plain = activations(bottom, images)
    on_disk = activations(bottom, Rows(images, np.arange(5)), spill=tmp_path / "p.f16")
    np.testing.assert_array_equal(on_disk[0:5], plain)


def test_decoded_photos_can_wait_on_disk(tmp_path: Path) -> None:
    items = []
    for n in range(70):  # more than one spill block
        path = tmp_path / f"{n}.png"
        path.write_bytes(
            image_bytes(color=(3 * n, 100, 200 - 2 * n), size=(40, 30), fmt="PNG", pattern=n % 9)
        )
        items.append((str(path), f"p{n % 7}"))
    items.append((str(tmp_path / "missing.png"), "p0"))
    in_memory = decode_items(items, SIZE)
    spilled = decode_items(items, SIZE, spill=tmp_path / "photos.u8")
    assert isinstance(spilled.images, DiskArray) and spilled.skipped == in_memory.skipped == 1
    np.testing.assert_array_equal(spilled.images[0:70], in_memory.images)
    np.testing.assert_array_equal(spilled.labels, in_memory.labels)
