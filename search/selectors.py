"""Every read of the search app's state: which model serves, which collections take writes, what is
due for indexing. Writes live in search/services/."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from catalog.models import IndexStatus, ProductImage
from ml.ocr import ENGINE as OCR_ENGINE
from search.models import (
    REINDEX_KIND,
    ImageText,
    Job,
    JobRunnerBeat,
    JobState,
    ModelStatus,
    ModelVersion,
    ReindexStatus,
    TextStatus,
)


def active_model() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first()


# Queries read the active model on every request; a short per-process cache saves a database round
# trip (about 2 ms here). A query still embeds and searches with one and the same model row, so a
# promotion seen up to this long after the fact only means the old model (and its kept collection)
# answers a moment longer.
ACTIVE_CACHE_S = 2.0
_active_cache: tuple[float, ModelVersion | None] = (0.0, None)


def active_model_cached() -> ModelVersion | None:
    global _active_cache
    now = time.monotonic()
    stamp, model = _active_cache
    if model is None or now - stamp > ACTIVE_CACHE_S:
        model = active_model()
        _active_cache = (now, model)
    return model


def forget_active_model() -> None:
    """Drop this process's cached active model (after a promotion, and between tests)."""
    global _active_cache
    _active_cache = (0.0, None)


def write_targets() -> list[ModelVersion]:
    """Every model whose collection must receive new uploads: the active one first, then any being filled."""
    targets = []
    active = active_model()
    if active is not None:
        targets.append(active)
    versions = list(open_reindexes().values_list("result__model_version", flat=True))
    filling = ModelVersion.objects.filter(version__in=versions) if versions else []
    targets.extend(m for m in filling if active is None or m.pk != active.pk)
    return targets


def models_with_collections() -> list[ModelVersion]:
    return list(ModelVersion.objects.exclude(collection=""))


def latest_candidate() -> ModelVersion | None:
    return ModelVersion.objects.filter(status=ModelStatus.CANDIDATE).order_by("-version").first()


def previous_model() -> ModelVersion | None:
    """The model that served before the active one (rollback's target), if its collection was kept."""
    return (
        ModelVersion.objects.filter(status=ModelStatus.RETIRED)
        .exclude(collection="")
        .order_by("-promoted_at", "-version")
        .first()
    )


def next_version_number() -> int:
    top = ModelVersion.objects.aggregate(m=Max("version"))["m"]
    # Versions must also be new on disk: TF Serving would otherwise serve an old folder's model.
    model_root = Path(settings.MODELS_DIR) / settings.TF_SERVING_MODEL_NAME
    on_disk = [int(p.name) for p in model_root.glob("*") if p.name.isdigit()]
    return max([top or 0, *on_disk]) + 1


def open_reindexes() -> QuerySet[Job]:
    """Reindex jobs filling a candidate's collection: begun (their result names the model), neither
    promoted nor rejected, and not ended (one re-queued after its runner died is still filling)."""
    return (
        Job.objects.filter(
            kind=REINDEX_KIND, state__in=[JobState.QUEUED, JobState.RUNNING], result__has_key="model_version"
        )
        .exclude(result__status__in=[ReindexStatus.PROMOTED, ReindexStatus.REJECTED])
        .order_by("created_at")
    )


def reindex_in_progress(*, exclude: int | None = None) -> Job | None:
    """The reindex job in progress (other than ``exclude``), if any."""
    return open_reindexes().exclude(pk=exclude).first() if exclude else open_reindexes().first()


def due_for_sweep(now: datetime | None = None, *, include_fresh: bool = False) -> list[str]:
    """Images to (re)index: pending past the grace period (or all, with ``include_fresh``), and failed
    ones under the attempt cap whose backoff has passed."""
    now = now or timezone.now()
    grace = now if include_fresh else now - timedelta(seconds=settings.INDEX_PENDING_GRACE_S)
    due = ProductImage.objects.filter(
        Q(index_status=IndexStatus.PENDING, updated_at__lt=grace)
        | Q(index_status=IndexStatus.FAILED, index_attempts__lt=settings.INDEX_MAX_ATTEMPTS)
    ).filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    return [str(pk) for pk in due.values_list("pk", flat=True)[:5000]]


def pending_companions(
    exclude: list[str], limit: int, max_age_s: int = 600, since: datetime | None = None
) -> list[str]:
    """Other recent uploads still pending, to embed in the same batch as a task's own images.

    Embedding uploads one by one pays the per-call cost (database round trips, model call) per image;
    taking waiting neighbours along shares it. Recent: added in the last ``max_age_s``, or since
    ``since`` when that is earlier (uploads that published no task of their own, counting on this one).
    """
    if limit <= 0:
        return []
    recent = timezone.now() - timedelta(seconds=max_age_s)
    since = min(since, recent) if since is not None else recent
    qs = (
        ProductImage.objects.filter(index_status=IndexStatus.PENDING, created_at__gte=since)
        .exclude(pk__in=exclude)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    return [str(pk) for pk in qs]


def images_not_indexed(image_ids: list[str]) -> list[str]:
    """Those of ``image_ids`` that still exist and are not marked indexed (pending, or failed)."""
    qs = ProductImage.objects.filter(pk__in=image_ids).exclude(index_status=IndexStatus.INDEXED)
    return [str(pk) for pk in qs.values_list("pk", flat=True)]


def images_indexed_since(when: datetime) -> int:
    """Images marked indexed since ``when``: an import's indexing pace, whoever indexes them."""
    return ProductImage.objects.filter(index_status=IndexStatus.INDEXED, indexed_at__gte=when).count()


def image_ids_in_order(*, after: str = "", limit: int) -> list[str]:
    """Image ids in primary-key order after ``after``: the cursor a reindex fill walks."""
    qs = ProductImage.objects.order_by("pk")
    if after:
        qs = qs.filter(pk__gt=after)
    return [str(pk) for pk in qs.values_list("pk", flat=True)[:limit]]


def image_labels() -> dict[str, int]:
    """Every image id with its product id: the ground truth the evaluation gate scores against."""
    return {str(pk): product_id for pk, product_id in ProductImage.objects.values_list("pk", "product_id")}


# --- jobs ---------------------------------------------------------------------------------------------


def open_jobs() -> QuerySet[Job]:
    """Jobs queued or running, oldest first."""
    return Job.objects.filter(state__in=(JobState.QUEUED, JobState.RUNNING)).order_by("created_at", "id")


def next_queued_job(*, kinds: list[str] | None = None) -> int | None:
    """The oldest queued job (of ``kinds``): the runners' poll, one index range scan."""
    qs = Job.objects.filter(state=JobState.QUEUED)
    if kinds is not None:
        qs = qs.filter(kind__in=kinds)
    return qs.order_by("created_at", "id").values_list("pk", flat=True).first()


def stale_jobs(cutoff: datetime) -> list[Job]:
    """Running jobs whose runner has not beaten since ``cutoff`` (its process is gone)."""
    return list(
        Job.objects.filter(state=JobState.RUNNING).filter(
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
        )
    )


def live_job_runners(*, within_s: float) -> int:
    """How many processes' job runners beat in the last ``within_s`` seconds."""
    since = timezone.now() - timedelta(seconds=within_s)
    return JobRunnerBeat.objects.filter(beat_at__gte=since).count()


def job_get(job_id: int) -> Job | None:
    return Job.objects.filter(pk=job_id).first()


def pending_among(image_ids: list[str]) -> list[str]:
    """Those of ``image_ids`` still waiting to be indexed."""
    qs = ProductImage.objects.filter(pk__in=image_ids, index_status=IndexStatus.PENDING)
    return [str(pk) for pk in qs.values_list("pk", flat=True)]


def image_count() -> int:
    return ProductImage.objects.count()


def images_needing_text(
    *,
    retry_failed: bool = True,
    max_attempts: int | None = None,
    added_before: datetime | None = None,
    failed_before: datetime | None = None,
    limit: int | None = None,
) -> list[str]:
    """Ids of the images whose text is not read from their current bytes by the current engine (never
    read, replaced bytes, an upgraded engine), and those that failed unless ``retry_failed`` is off;
    in a stable order, for a command's progress.

    The sweep narrows it: images added before ``added_before`` (the fast path had its chance), failed
    ones tried fewer than ``max_attempts`` times and last before ``failed_before``."""
    stale = Q(text__isnull=True) | ~Q(text__sha256=F("sha256")) | ~Q(text__engine=OCR_ENGINE)
    if retry_failed:
        failed = Q(text__status=TextStatus.FAILED)
        if max_attempts is not None:
            failed &= Q(text__attempts__lt=max_attempts)
        if failed_before is not None:
            failed &= Q(text__read_at__lt=failed_before)
        stale |= failed
    images = ProductImage.objects.filter(stale)
    if added_before is not None:
        images = images.filter(created_at__lt=added_before)
    ids = images.order_by("id").values_list("id", flat=True)
    return [str(i) for i in (ids[:limit] if limit else ids)]


def image_text_of(image_ids: list[str]) -> dict[str, ImageText]:
    return {str(row.image_id): row for row in ImageText.objects.filter(image_id__in=image_ids)}
