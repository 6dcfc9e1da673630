"""Keeping the vector store in step with the catalog: index, remove, sync payloads, sweep.

Every operation is idempotent (point id = image UUID), so a task that is retried, redelivered after
a worker crash, or re-enqueued by the sweeper does no harm.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from catalog.models import IndexStatus, Product, ProductImage
from ml.preprocess import ImageRejected, preprocess
from search import model_versions
from search.runtime import embedder_for, vector_store
from search.vector_store import SearchFilter

log = logging.getLogger(__name__)


class NoActiveModel(RuntimeError):
    pass


def payload_for(product: Product, model_version: int) -> dict:
    return {
        "product_id": product.pk,
        "sku": product.sku,
        "category": product.category,
        "price": float(product.price) if product.price is not None else None,
        "in_stock": product.in_stock,
        "model_version": str(model_version),
    }


@dataclass
class IndexOutcome:
    indexed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _read_pixels(
    images: list[ProductImage], size: int, outcome: IndexOutcome
) -> tuple[list[ProductImage], np.ndarray]:
    ok, arrays = [], []
    for image in images:
        try:
            with default_storage.open(image.file.name, "rb") as handle:
                data = handle.read()
            arrays.append(preprocess(data, size))
            ok.append(image)
        except FileNotFoundError:
            outcome.failed[str(image.id)] = "missing_file: the image file is gone from storage."
        except ImageRejected as exc:
            outcome.failed[str(image.id)] = str(exc)
    batch = np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)
    return ok, batch


def index_images(
    image_ids: Iterable[str], *, targets: list | None = None, mark: bool = True, skip_indexed: bool = False
) -> IndexOutcome:
    """Embed and upsert the given images into every write target; mark each image's outcome.

    Transient failures (store or model unreachable) propagate so the task retries; a bad image is
    marked failed and the rest of the batch still indexes. ``skip_indexed`` leaves out images already
    indexed by the active model (a redelivered task, or one whose images a batch took along).
    """
    ids = [str(i) for i in image_ids]
    outcome = IndexOutcome()
    images = list(ProductImage.objects.select_related("product").filter(pk__in=ids))
    found = {str(i.pk) for i in images}
    outcome.missing = [i for i in ids if i not in found]
    if not images:
        return outcome
    if targets is None:
        targets = model_versions.write_targets()
        active = targets[0] if targets and targets[0].status == "active" else None
    else:
        active = model_versions.active_model()
    if not targets:
        raise NoActiveModel("No active model version; run `manage.py bootstrap_model` (or `demo`).")
    if skip_indexed and active is not None:
        done = str(active.version)
        images = [
            i
            for i in images
            if not (i.index_status == IndexStatus.INDEXED and i.indexed_model_version == done)
        ]
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
        vectors = embedder.embed(pixels)
        if active is not None and target.pk == active.pk:
            active_vectors = {str(img.pk): vec for img, vec in zip(ok_images, vectors, strict=True)}
        store.ensure_collection(target.collection, target.embedding_dim)
        store.upsert(
            target.collection,
            [
                (str(img.pk), vec, payload_for(img.product, target.version))
                for img, vec in zip(ok_images, vectors, strict=True)
            ],
        )
    # An image deleted while we embedded it must not leave a point behind.
    still_there = set(
        str(pk)
        for pk in ProductImage.objects.filter(pk__in=[i.pk for i in ok_images]).values_list("pk", flat=True)
    )
    vanished = [str(i.pk) for i in ok_images if str(i.pk) not in still_there]
    if vanished:
        for target in targets:
            store.delete(target.collection, vanished)
    indexed = [i for i in ok_images if str(i.pk) in still_there]
    outcome.indexed = [str(i.pk) for i in indexed]
    if not mark:  # a backfill into a new model's collection leaves the rows' status to the live path
        return outcome
    now = timezone.now()
    indexed_ids = [i.pk for i in indexed]
    version_label = str(active.version) if active is not None else str(targets[0].version)
    ProductImage.objects.filter(pk__in=indexed_ids).update(
        index_status=IndexStatus.INDEXED,
        indexed_model_version=version_label,
        indexed_at=now,
        last_error="",
        next_attempt_at=None,
        updated_at=now,
    )
    if active_vectors:
        flag_duplicates(indexed, active, active_vectors)
    for image_id, error in outcome.failed.items():
        image = next(i for i in images if str(i.pk) == image_id)
        ProductImage.objects.filter(pk=image_id).update(
            index_status=IndexStatus.FAILED,
            last_error=error[:2000],
            index_attempts=image.index_attempts + 1,
            next_attempt_at=now + _backoff(image.index_attempts + 1),
            updated_at=now,
        )
    return outcome


def note_transient_failure(image_ids: Iterable[str], error: str) -> None:
    """Record why indexing could not run; the images stay pending for the sweeper to retry."""
    now = timezone.now()
    for image in ProductImage.objects.filter(pk__in=list(image_ids)).exclude(
        index_status=IndexStatus.INDEXED
    ):
        ProductImage.objects.filter(pk=image.pk).update(
            last_error=error[:2000],
            index_attempts=image.index_attempts + 1,
            next_attempt_at=now + _backoff(image.index_attempts + 1),
            updated_at=now,
        )


def _backoff(attempts: int) -> timedelta:
    # 30 s, 1 min, 2 min, ... capped at 1 h: a broken image stops costing work, a blip heals fast.
    return timedelta(seconds=min(3600, settings.INDEX_PENDING_GRACE_S * 2 ** max(0, attempts - 1)))


def remove_image_points(image_ids: Iterable[str]) -> int:
    ids = [str(i) for i in image_ids]
    # Rows that still exist (a replayed task after a re-upload) keep their points.
    live = {str(pk) for pk in ProductImage.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    gone = [i for i in ids if i not in live]
    if not gone:
        return 0
    store = vector_store()
    for model in model_versions.models_with_collections():
        if store.collection_exists(model.collection):
            store.delete(model.collection, gone)
    return len(gone)


def sync_product_payload(product_id: int) -> None:
    store = vector_store()
    product = Product.objects.filter(pk=product_id).first()
    for model in model_versions.models_with_collections():
        if not store.collection_exists(model.collection):
            continue
        if product is None:
            store.delete_by_product(model.collection, product_id)
        else:
            patch = payload_for(product, model.version)
            patch.pop("model_version")
            store.set_payload_by_product(model.collection, product_id, patch)


def due_for_sweep(now=None, *, include_fresh: bool = False) -> list[str]:
    """Images to (re)index: pending past the grace period (or all, with ``include_fresh``), and failed
    ones under the attempt cap whose backoff has passed."""
    now = now or timezone.now()
    grace = now if include_fresh else now - timedelta(seconds=settings.INDEX_PENDING_GRACE_S)
    due = ProductImage.objects.filter(
        Q(index_status=IndexStatus.PENDING, updated_at__lt=grace)
        | Q(index_status=IndexStatus.FAILED, index_attempts__lt=settings.INDEX_MAX_ATTEMPTS)
    ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    return [str(pk) for pk in due.values_list("pk", flat=True)[:5000]]


def flag_duplicates(images: list[ProductImage], model, vectors: dict[str, np.ndarray]) -> int:
    """Mark a product "possible duplicate of" another whose image is nearly identical to one of its own.

    ``vectors`` are the images' embeddings just computed by ``model`` (no read-back from the store).
    One extra nearest-neighbour query per newly indexed image (a few ms with exact search at 10k points).
    """
    threshold = settings.DUPLICATE_SCORE_THRESHOLD
    store = vector_store()
    flagged = 0
    for image in images:
        vector = vectors.get(str(image.pk))
        if vector is None:
            continue
        hits = store.search(
            model.collection,
            vector,
            1,
            SearchFilter(exclude_product_ids=[image.product_id]),
            group_by_product=True,
        )
        if not hits or hits[0].score < threshold:
            continue
        hit = hits[0]
        updated = (
            Product.objects.filter(pk=image.product_id)
            .filter(Q(duplicate_score__isnull=True) | Q(duplicate_score__lt=hit.score))
            .update(possible_duplicate_of_id=hit.product_id, duplicate_score=hit.score)
        )
        flagged += updated
    return flagged


def claim_for_sweep(now=None) -> list[str]:
    """The sweeper's pick: what is due, each pushed back by its growing backoff so an image still
    waiting in a long queue is not enqueued again every minute."""
    now = now or timezone.now()
    due = due_for_sweep(now)
    # One UPDATE per attempt count rather than per image: up to 5,000 images are due at once.
    by_attempts: dict[int, list] = {}
    for pk, attempts in ProductImage.objects.filter(pk__in=due).values_list("pk", "index_attempts"):
        by_attempts.setdefault(attempts, []).append(pk)
    for attempts, pks in by_attempts.items():
        ProductImage.objects.filter(pk__in=pks).update(
            index_attempts=attempts + 1, next_attempt_at=now + _backoff(attempts + 1)
        )
    return due


def pending_companions(exclude: list[str], limit: int, max_age_s: int = 600) -> list[str]:
    """Other recent uploads still pending, to embed in the same batch as a task's own images.

    One upload is one task; embedding them one by one pays the per-call cost (database round trips,
    model call) per image. Taking waiting neighbours along shares it; their own tasks then find them
    indexed and return at once.
    """
    if limit <= 0:
        return []
    since = timezone.now() - timedelta(seconds=max_age_s)
    qs = (
        ProductImage.objects.filter(index_status=IndexStatus.PENDING, created_at__gte=since)
        .exclude(pk__in=exclude)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    return [str(pk) for pk in qs]
