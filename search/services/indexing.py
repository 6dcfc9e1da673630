"""Embedding images and upserting them into the vector store; marking each image's outcome.

Three entry points, one per purpose:
- ``index_pending_images``: the live path (uploads, the sweeper, ``index_pending``): every collection that
  takes writes (the active model's, and one being filled by a reindex), rows marked indexed or failed,
  duplicates flagged.
- ``fill_collection``: one model's collection only, rows untouched (a reindex filling a new collection).
- ``repair_missing``: points a collection lacks (reconcile); rows marked when the model is the active one.

Every operation is idempotent (point id = image UUID), so a task that is retried, redelivered after a
worker crash, or re-enqueued by the sweeper does no harm. Transient failures (store or model server
unreachable) propagate so the caller retries; a bad image is marked failed and the batch goes on.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.utils import timezone

from catalog.models import IndexStatus, ProductImage
from catalog.storage import read_image
from ml.preprocess import ImageRejected, preprocess
from search import selectors
from search.embedders import embedder_for
from search.errors import NoActiveModel
from search.metrics import instruments
from search.models import ModelStatus, ModelVersion
from search.payloads import point_payload
from search.services.duplicates import flag_duplicates
from search.services.model_versions import bootstrap_model_auto
from search.services.sweeping import backoff
from search.vector_store import vector_store


@dataclass
class IndexOutcome:
    indexed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def index_pending_images(image_ids: Iterable[str]) -> IndexOutcome:
    """Index images into every collection that takes writes; skip those the active model has indexed."""
    outcome = IndexOutcome()
    images = _load(image_ids, outcome)
    if not images:
        return outcome
    targets = selectors.write_targets()
    if not targets and settings.AUTO_BOOTSTRAP_MODEL:
        # The first import or upload of a fresh install: make the catalog searchable on its own.
        bootstrap_model_auto()
        targets = selectors.write_targets()
    if not targets:
        raise NoActiveModel()
    active = targets[0] if targets[0].status == ModelStatus.ACTIVE else None
    if active is not None:
        done = str(active.version)
        images = [
            i
            for i in images
            if not (i.index_status == IndexStatus.INDEXED and i.indexed_model_version == done)
        ]
    return _index(images, targets, active=active, mark=True, outcome=outcome)


def fill_collection(image_ids: Iterable[str], model: ModelVersion) -> IndexOutcome:
    """Embed images into ``model``'s collection only, leaving the rows' status to the live path."""
    outcome = IndexOutcome()
    return _index(_load(image_ids, outcome), [model], active=None, mark=False, outcome=outcome)


def repair_missing(image_ids: Iterable[str], model: ModelVersion) -> IndexOutcome:
    """Embed images whose points ``model``'s collection lacks; mark the rows if ``model`` serves."""
    outcome = IndexOutcome()
    serving = model.status == ModelStatus.ACTIVE
    images = _load(image_ids, outcome)
    return _index(images, [model], active=model if serving else None, mark=serving, outcome=outcome)


def _load(image_ids: Iterable[str], outcome: IndexOutcome) -> list[ProductImage]:
    ids = [str(i) for i in image_ids]
    images = list(ProductImage.objects.select_related("product").filter(pk__in=ids))
    found = {str(i.pk) for i in images}
    outcome.missing = [i for i in ids if i not in found]
    return images


# Pillow releases the GIL while it decodes and resizes, so a batch's photos decode on every core
# (at most 4 threads: the embedder's own threads want the cores next).
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


@functools.cache
def _pool() -> ThreadPoolExecutor:
    # One pool for the process; its threads start on first use.
    return ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="lookalike-decode")


def _decode(image: ProductImage, size: int) -> tuple[np.ndarray | None, str]:
    try:
        return preprocess(read_image(image.file.name), size), ""
    except FileNotFoundError:
        return None, "missing_file: the image file is gone from storage."
    except ImageRejected as exc:
        return None, str(exc)


def _read_pixels(
    images: list[ProductImage], size: int, outcome: IndexOutcome
) -> tuple[list[ProductImage], np.ndarray]:
    ok, arrays = [], []
    # A single upload decodes in the calling thread; a batch on the pool.
    pool_map = _pool().map if len(images) > 1 else map
    decoded = pool_map(lambda image: _decode(image, size), images)
    for image, (pixels, error) in zip(images, decoded, strict=True):
        if pixels is None:
            outcome.failed[str(image.id)] = error
        else:
            arrays.append(pixels)
            ok.append(image)
    batch = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return ok, batch


def _index(
    images: list[ProductImage],
    targets: list[ModelVersion],
    *,
    active: ModelVersion | None,
    mark: bool,
    outcome: IndexOutcome,
) -> IndexOutcome:
    if not images:
        return outcome
    store = vector_store()
    ok_images: list[ProductImage] = images
    decoded: dict[int, tuple[list[ProductImage], np.ndarray]] = {}  # by input size: decode once per size
    active_vectors: dict[str, np.ndarray] = {}
    for target in targets:
        embedder = embedder_for(target)
        if embedder.image_size not in decoded:
            decoded[embedder.image_size] = _read_pixels(images, embedder.image_size, outcome)
        ok_images, pixels = decoded[embedder.image_size]
        if not ok_images:
            break
        start = time.perf_counter()
        vectors = embedder.embed(pixels)
        instruments.observe_embedding(
            model_version=target.version,
            purpose="index",
            images=len(ok_images),
            seconds=time.perf_counter() - start,
        )
        if active is not None and target.pk == active.pk:
            active_vectors = {str(img.pk): vec for img, vec in zip(ok_images, vectors, strict=True)}
        store.ensure_collection(target.collection, target.embedding_dim)
        store.upsert(
            target.collection,
            [
                (str(img.pk), vec, point_payload(img.product, target.version))
                for img, vec in zip(ok_images, vectors, strict=True)
            ],
        )
    # An image deleted while we embedded it must not leave a point behind.
    still_there = {
        str(pk)
        for pk in ProductImage.objects.filter(pk__in=[i.pk for i in ok_images]).values_list("pk", flat=True)
    }
    vanished = [str(i.pk) for i in ok_images if str(i.pk) not in still_there]
    if vanished:
        for target in targets:
            store.delete(target.collection, vanished)
    indexed = [i for i in ok_images if str(i.pk) in still_there]
    outcome.indexed = [str(i.pk) for i in indexed]
    if not mark:
        return outcome
    label = str((active or targets[0]).version)
    _mark_indexed(indexed, label)
    if active_vectors:
        flag_duplicates(indexed, active, active_vectors)
    _mark_failed(images, outcome.failed)
    return outcome


def _mark_indexed(images: list[ProductImage], model_label: str) -> None:
    now = timezone.now()
    ProductImage.objects.filter(pk__in=[i.pk for i in images]).update(
        index_status=IndexStatus.INDEXED,
        indexed_model_version=model_label,
        indexed_at=now,
        last_error="",
        next_attempt_at=None,
        updated_at=now,
    )


def _mark_failed(images: list[ProductImage], failed: dict[str, str]) -> None:
    now = timezone.now()
    by_id = {str(i.pk): i for i in images}
    for image_id, error in failed.items():
        attempts = by_id[image_id].index_attempts + 1
        ProductImage.objects.filter(pk=image_id).update(
            index_status=IndexStatus.FAILED,
            last_error=error[:2000],
            index_attempts=attempts,
            next_attempt_at=now + backoff(attempts),
            updated_at=now,
        )
