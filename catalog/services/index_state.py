"""The index state the search app keeps on catalog rows: an image's ``index_status`` and its retry
bookkeeping, a product's "possible duplicate" flag. Search decides what happened (an image indexed,
failed, due again; two products alike); these functions write it, so only the catalog writes its
tables.

Each call is one batched statement (or one per retry count), the same WHERE clauses the indexing path
always ran: it is hot (one call per batch of 64 photos). Retry delays are search's policy, so they are
passed in (``retry_in``: attempts -> delay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from catalog.models import IndexStatus, Product, ProductImage

RetryIn = Callable[[int], timedelta]
ImageIds = Iterable[UUID | str]

# last_error is a TextField; a traceback-sized message is cut so one bad photo cannot bloat the row.
ERROR_MAX = 2000


def images_mark_indexed(*, image_ids: ImageIds, model_label: str) -> None:
    """The images are in the serving collection of model ``model_label``; their retry state is cleared."""
    now = timezone.now()
    ProductImage.objects.filter(pk__in=list(image_ids)).update(
        index_status=IndexStatus.INDEXED,
        indexed_model_version=model_label,
        indexed_at=now,
        last_error="",
        next_attempt_at=None,
        updated_at=now,
    )


def images_mark_failed(
    *, images: Sequence[ProductImage], errors: Mapping[str, str], retry_in: RetryIn
) -> None:
    """The images whose id is in ``errors`` could not be indexed (a bad photo): failed, with the reason
    and their next attempt. ``images`` are the rows as loaded (their attempt counts); they are updated
    in place."""
    if not errors:
        return
    now = timezone.now()
    rows = []
    for image in images:
        error = errors.get(str(image.pk))
        if error is None:
            continue
        image.index_status = IndexStatus.FAILED
        image.last_error = error[:ERROR_MAX]
        image.index_attempts += 1
        image.next_attempt_at = now + retry_in(image.index_attempts)
        image.updated_at = now
        rows.append(image)
    # One UPDATE for the batch's failures (a CASE per field), not one per photo.
    ProductImage.objects.bulk_update(
        rows, ["index_status", "last_error", "index_attempts", "next_attempt_at", "updated_at"]
    )


def images_note_transient_failure(*, image_ids: ImageIds, error: str, retry_in: RetryIn) -> None:
    """Indexing could not run (the store or the model server unreachable): the images not yet indexed
    keep their status and get the reason, one more attempt counted and their next attempt."""
    now = timezone.now()
    for image in ProductImage.objects.filter(pk__in=list(image_ids)).exclude(
        index_status=IndexStatus.INDEXED
    ):
        ProductImage.objects.filter(pk=image.pk).update(
            last_error=error[:ERROR_MAX],
            index_attempts=image.index_attempts + 1,
            next_attempt_at=now + retry_in(image.index_attempts + 1),
            updated_at=now,
        )


def images_push_back(*, image_ids: Sequence[UUID | str], now: datetime, retry_in: RetryIn) -> None:
    """The sweeper took these images: one more attempt each, and their next attempt moved on by their
    growing delay, so an image still waiting in a long queue is not taken again every minute."""
    # One UPDATE per attempt count rather than per image: up to 5,000 images are due at once.
    by_attempts: dict[int, list[UUID]] = {}
    for pk, attempts in ProductImage.objects.filter(pk__in=image_ids).values_list("pk", "index_attempts"):
        by_attempts.setdefault(attempts, []).append(pk)
    for attempts, pks in by_attempts.items():
        ProductImage.objects.filter(pk__in=pks).update(
            index_attempts=attempts + 1, next_attempt_at=now + retry_in(attempts + 1)
        )


def images_mark_pending(*, image_ids: ImageIds) -> None:
    """The images are to be indexed again (their point is missing from the serving collection)."""
    ProductImage.objects.filter(pk__in=list(image_ids)).update(index_status=IndexStatus.PENDING)


def images_confirm_indexed(*, image_ids: ImageIds, model_label: str) -> None:
    """Pending images whose point the serving collection already holds are indexed (reconcile)."""
    ProductImage.objects.filter(pk__in=list(image_ids), index_status=IndexStatus.PENDING).update(
        index_status=IndexStatus.INDEXED, indexed_model_version=model_label
    )


def images_relabel_indexed(*, model_label: str) -> None:
    """Another model now serves, and its collection holds every indexed image: relabel them."""
    ProductImage.objects.filter(index_status=IndexStatus.INDEXED).update(indexed_model_version=model_label)


def product_flag_duplicate(*, product_id: int, duplicate_of_id: int, score: float) -> bool:
    """Flag ``product_id`` a possible duplicate of ``duplicate_of_id`` unless it already carries a flag
    at least as strong. Returns whether the flag was set."""
    return bool(
        Product.objects.filter(pk=product_id)
        .filter(Q(duplicate_score__isnull=True) | Q(duplicate_score__lt=score))
        .update(possible_duplicate_of_id=duplicate_of_id, duplicate_score=score)
    )
