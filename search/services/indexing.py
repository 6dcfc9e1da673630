"""Embedding images and upserting them into the vector store; marking each image's outcome.

Three entry points, one per purpose:
- ``index_pending_images``: the live path (uploads, the sweeper, ``index_pending``): every collection that
  takes writes (the active model's, and one being filled by a reindex), rows marked indexed or failed,
  duplicates flagged.
- ``fill_collection``: one model's collection only, rows untouched (a reindex filling a new collection).
- ``repair_missing``: points a collection lacks (reconcile); rows marked when the model is the active one.

All three run the same batched pipeline (``_pipeline``): batches of ``BATCH`` images, a batch's photos
decoded on a thread pool (the next batch's while the current one embeds where a core is spare), one upsert per collection and one row update
per batch. Every operation is idempotent (point id = image UUID), so a task that is retried, redelivered after a
worker crash, or re-enqueued by the sweeper does no harm. Transient failures (store or model server
unreachable) propagate so the caller retries; a bad image is marked failed and the batch goes on.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from catalog import image_limits
from catalog import selectors as catalog_selectors
from catalog.services import index_state
from ml.preprocess import ImageRejected
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

if TYPE_CHECKING:
    from catalog.models import ProductImage


@dataclass
class IndexOutcome:
    indexed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def index_pending_images(
    image_ids: Iterable[str] | Iterator[list[str]],
    *,
    on_batch: Callable[[IndexOutcome], None] | None = None,
) -> IndexOutcome:
    """Index images into every collection that takes writes; skip those the active model has indexed.

    ``image_ids`` is a list (cut into batches of ``BATCH``) or an iterator of batches, drawn one batch
    ahead (its rows read, and with ``DECODE_AHEAD`` its photos decoded, while this one embeds). ``on_batch`` hears each batch's own
    outcome once its rows are written (progress, cancellation: an exception stops before the next).
    """
    outcome = IndexOutcome()
    batches = _batches(image_ids)
    first: list[ProductImage] = []
    for ids in batches:  # up to the first batch with rows: none at all needs no model
        first = _load(ids, outcome)
        if first:
            break
    if not first:
        return outcome
    targets = selectors.write_targets()
    if not targets and settings.AUTO_BOOTSTRAP_MODEL:
        # The first import or upload of a fresh install: make the catalog searchable on its own.
        bootstrap_model_auto()
        targets = selectors.write_targets()
    if not targets:
        # Nothing was loaded or written yet: the caller's retry (or the sweeper) starts over cleanly.
        raise NoActiveModel()
    active = targets[0] if targets[0].status == ModelStatus.ACTIVE else None
    done = str(active.version) if active is not None else None

    def still_due(images: list[ProductImage]) -> list[ProductImage]:
        return [i for i in images if not i.is_indexed_by(done)]

    return _pipeline(
        batches,
        targets,
        active=active,
        mark=True,
        keep=still_due if done else None,
        outcome=outcome,
        on_batch=on_batch,
        loaded=first,
    )


# How long one worker task goes on taking other pending uploads after its own: long enough that a
# burst of uploads is embedded in full batches by the first task (the later tasks find their images
# indexed and return after a query or two), short enough that other tasks on the same worker wait
# little (a 64-photo batch of the default model takes about 3 s on 2 cores).
PULL_BUDGET_S = 60.0
# A companion taken by one worker is left to it for this long by the others (its own task still
# indexes it if that worker dies: own images are never skipped).
CLAIM_S = 120


def index_with_pending(
    image_ids: Iterable[str], *, budget_s: float | None = None, since: datetime | None = None
) -> IndexOutcome:
    """A worker's run: its own images, then other recent uploads still pending (those added since
    ``since`` as well), batch after batch, until none is left or ``budget_s`` (``PULL_BUDGET_S``) is
    spent. One task thus embeds a burst of uploads in batches of ``BATCH`` instead of one model call per
    upload; every image is still indexed once per model (the rows say which are done), and a
    redelivered task only repeats idempotent writes."""
    own = list(dict.fromkeys(str(i) for i in image_ids))
    if not selectors.images_not_indexed(own):
        # Taken along by an earlier task (the usual fate of an upload in a burst without a shared
        # cache, which leaves one such task per upload behind it): nothing of its own to embed.
        # Uploads still pending are taken all the same, or they would wait behind the rest of those
        # tasks; with none, two queries.
        own = []
    seen = set(own)
    deadline = time.monotonic() + (PULL_BUDGET_S if budget_s is None else budget_s)
    recent: list[list[str]] = []  # the batches in flight (drawn, not yet written): still pending

    def take(limit: int) -> list[str]:
        exclude = [i for batch in recent[-2:] for i in batch]
        found = selectors.pending_companions(exclude=exclude or own, limit=limit, since=since)
        fresh = [i for i in found if i not in seen and _claim(i)]
        seen.update(found)
        return fresh

    def batches() -> Iterator[list[str]]:
        first = own + take(BATCH - len(own)) if len(own) < BATCH else own
        if not first:
            return
        recent.append(first)
        yield first
        while time.monotonic() < deadline:
            more = take(BATCH)
            if not more:
                return
            recent.append(more)
            yield more

    return index_pending_images(batches())


def pending_left(since: datetime) -> bool:
    """Whether an upload added since ``since`` still waits (a run that ended on its budget)."""
    return bool(selectors.pending_companions(exclude=[], limit=1, since=since))


def _claim(image_id: str) -> bool:
    # Two workers pulling at once would otherwise both embed the same pending uploads; the shared
    # cache (CACHE_URL) is the cheap arbiter. Losing a claim costs nothing: the image's own task runs.
    return cache.add(f"lookalike:index-claim:{image_id}", 1, timeout=CLAIM_S)


def fill_collection(
    image_ids: Iterable[str] | Iterator[list[str]],
    model: ModelVersion,
    *,
    on_batch: Callable[[IndexOutcome], None] | None = None,
) -> IndexOutcome:
    """Embed images into ``model``'s collection only, leaving the rows' status to the live path."""
    return _pipeline(
        _batches(image_ids), [model], active=None, mark=False, outcome=IndexOutcome(), on_batch=on_batch
    )


def repair_missing(image_ids: Iterable[str], model: ModelVersion) -> IndexOutcome:
    """Embed images whose points ``model``'s collection lacks; mark the rows if ``model`` serves."""
    serving = model.status == ModelStatus.ACTIVE
    return _pipeline(
        _batches(image_ids),
        [model],
        active=model if serving else None,
        mark=serving,
        outcome=IndexOutcome(),
    )


# Images per model call, vector store write and row update: the per-call costs (database round trips,
# the store's write, the interpreter's dispatch) are shared by the batch, and 64 photos at 348 px are
# about 23 MB of pixels in flight (two batches: the one embedding and the one decoding).
BATCH = 64


def _batches(image_ids: Iterable[str] | Iterator[list[str]]) -> Iterator[list[str]]:
    if isinstance(image_ids, Iterator):
        # Already batches (a caller that finds its next ids as it goes: a reindex cursor, a worker
        # pulling what is pending). Empty ones are skipped.
        return (list(map(str, ids)) for ids in image_ids if ids)
    ids = [str(i) for i in image_ids]
    return (ids[start : start + BATCH] for start in range(0, len(ids), BATCH))


def _load(image_ids: list[str], outcome: IndexOutcome) -> list[ProductImage]:
    images = catalog_selectors.images_with_products(image_ids=image_ids)
    found = {str(i.pk) for i in images}
    outcome.missing += [i for i in image_ids if i not in found]
    return images


# Pillow releases the GIL while it decodes and resizes, so a batch's photos decode on every core
# (at most 4 threads: the embedder's own threads want the cores next).
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


# Decoding the next batch while this one embeds pays only where a core is free for it: the in-process
# model already runs 2 threads. Measured on 2 shared cores (a reindex fill of 384 photos, EfficientNet-
# Lite0 at 348 px, 2026-12-06): 30.8 and 27.1 images/s decoding ahead against 30.4 and 29.7 after each
# batch (bare loop 34-35), i.e. nothing gained and the spinning model threads preempted, so it is on
# only with more than 2 cores. The next batch's rows are read ahead either way.
DECODE_AHEAD = (os.cpu_count() or 1) > 2


@functools.cache
def _pool() -> ThreadPoolExecutor:
    # One pool for the process; its threads start on first use.
    return ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="lookalike-decode")


def _decode(image: ProductImage, size: int) -> tuple[np.ndarray | None, str]:
    try:
        return image_limits.stored_photo_pixels(image.file.name, size), ""
    except FileNotFoundError:
        return None, "missing_file: the image file is gone from storage."
    except ImageRejected as exc:
        return None, str(exc)


class _Decoding:
    """A batch's photos decoding on the pool (one in the calling thread: no hand-off for an upload)."""

    def __init__(self, images: list[ProductImage], size: int) -> None:
        self.images, self.size = images, size
        if len(images) > 1:
            self._futures: list[Future[tuple[np.ndarray | None, str]]] | None = [
                _pool().submit(_decode, i, size) for i in images
            ]
        else:
            self._futures = None

    def result(self, failed: dict[str, str]) -> tuple[list[ProductImage], np.ndarray]:
        """The images that decoded and their pixels; the others' errors go into ``failed``."""
        if self._futures is None:
            decoded = [_decode(i, self.size) for i in self.images]
        else:
            decoded = [f.result() for f in self._futures]
        ok, arrays = [], []
        for image, (pixels, error) in zip(self.images, decoded, strict=True):
            if pixels is None:
                failed[str(image.id)] = error
            else:
                arrays.append(pixels)
                ok.append(image)
        batch = np.stack(arrays) if arrays else np.zeros((0, self.size, self.size, 3), np.uint8)
        return ok, batch

    def cancel(self) -> None:
        for future in self._futures or ():
            future.cancel()


def _pipeline(
    batches: Iterator[list[str]],
    targets: list[ModelVersion],
    *,
    active: ModelVersion | None,
    mark: bool,
    outcome: IndexOutcome,
    keep: Callable[[list[ProductImage]], list[ProductImage]] | None = None,
    on_batch: Callable[[IndexOutcome], None] | None = None,
    loaded: list[ProductImage] | None = None,
) -> IndexOutcome:
    """Two stages: the next batch's rows load and (with DECODE_AHEAD) its photos decode on the pool
    while this batch embeds and is written. Database work stays in the calling thread (its connection, its transaction).
    ``loaded``: the first batch's rows, already read by the caller."""

    def start(images: list[ProductImage] | None) -> _Decoding | None:
        if images is None:
            return None
        images = keep(images) if keep else images
        # The model opens only for a batch with something to embed (not for uploads already indexed).
        size = embedder_for(targets[0]).image_size if images else 0
        return _Decoding(images, size)

    def load_next() -> list[ProductImage] | None:
        ids = next(batches, None)
        return None if ids is None else _load(ids, outcome)

    ahead = start(loaded if loaded is not None else load_next())
    try:
        while ahead is not None:
            current = ahead
            ahead = None  # a failure below must not leave this batch's decodes cancelled twice
            if DECODE_AHEAD:
                ahead = start(load_next())
                step = _index_batch(current, targets, active=active, mark=mark)
            else:
                rows = load_next()
                step = _index_batch(current, targets, active=active, mark=mark)
                ahead = start(rows)
            outcome.indexed += step.indexed
            outcome.failed.update(step.failed)
            if on_batch is not None:
                on_batch(step)
    finally:
        if ahead is not None:
            ahead.cancel()
    return outcome


def _index_batch(
    decoding: _Decoding, targets: list[ModelVersion], *, active: ModelVersion | None, mark: bool
) -> IndexOutcome:
    """One batch: embed, upsert into every target, then its rows in one transaction (indexed in one
    UPDATE, failed in one more). A photo that cannot be read fails alone; an error of the store or the
    model propagates before any row changed, and replaying the batch is harmless (point id = image id)."""
    outcome = IndexOutcome()
    images = decoding.images
    if not images:
        return outcome
    store = vector_store()
    ok_images, pixels = decoding.result(outcome.failed)
    decoded = {decoding.size: (ok_images, pixels)}  # by input size: decode once per size
    active_vectors: dict[str, np.ndarray] = {}
    for target in targets if ok_images else ():
        embedder = embedder_for(target)
        if embedder.image_size not in decoded:
            # A reindex to a model of another input size (dual-write): decoded here, not ahead.
            decoded[embedder.image_size] = _Decoding(ok_images, embedder.image_size).result(outcome.failed)
        target_images, pixels = decoded[embedder.image_size]
        if not target_images:
            continue
        start = time.perf_counter()
        vectors = embedder.embed(pixels)
        instruments.observe_embedding(
            model_version=target.version,
            purpose="index",
            images=len(target_images),
            seconds=time.perf_counter() - start,
        )
        if active is not None and target.pk == active.pk:
            active_vectors = {str(img.pk): vec for img, vec in zip(target_images, vectors, strict=True)}
        store.ensure_collection(target.collection, target.embedding_dim)
        store.upsert(
            target.collection,
            [
                (str(img.pk), vec, point_payload(img.product, target.version))
                for img, vec in zip(target_images, vectors, strict=True)
            ],
        )
    ok_images = [i for i in ok_images if str(i.pk) not in outcome.failed]
    # An image deleted while we embedded it must not leave a point behind.
    still_there = catalog_selectors.existing_image_ids(image_ids=[i.pk for i in ok_images])
    vanished = [str(i.pk) for i in ok_images if str(i.pk) not in still_there]
    if vanished:
        for target in targets:
            store.delete(target.collection, vanished)
    indexed = [i for i in ok_images if str(i.pk) in still_there]
    outcome.indexed = [str(i.pk) for i in indexed]
    if not mark:
        return outcome
    label = str((active or targets[0]).version)
    with transaction.atomic():
        index_state.images_mark_indexed(image_ids=[i.pk for i in indexed], model_label=label)
        if active is not None and active_vectors:  # only the active model's vectors are kept
            flag_duplicates(indexed, active, active_vectors)
        index_state.images_mark_failed(images=images, errors=outcome.failed, retry_in=backoff)
    return outcome
