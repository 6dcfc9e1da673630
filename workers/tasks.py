"""Celery tasks: take ids, call a service. Reliability is declared on each task.

Every task here is idempotent, so ``acks_late`` + ``reject_on_worker_lost`` make a worker crash
mean "run it again", never "lost". Only transient errors (a store, model server, broker or database
that is briefly unreachable) are retried; with eager tasks (the embedded default) a transient failure
is recorded on the images and left to the sweeper instead of retrying inline.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from catalog.models import SyncRun
from catalog.services import activation
from catalog.services import sync as catalog_sync
from ml.ocr import OcrUnavailable
from ml.serving import EmbedderUnavailable
from search import selectors
from search.errors import NoActiveModel
from search.jobs import records, runner
from search.services import (
    balance,
    image_text,
    index_building,
    indexing,
    payload_sync,
    search_logs,
    sweeping,
    text_index,
)
from search.vector_store import VectorStoreError, VectorStoreLocked, VectorStoreUnavailable
from workers import upload_batching

log = logging.getLogger(__name__)

# A locked embedded store means another process owns it (the web server, say): the images stay
# pending, and that process's sweeper indexes them. No active model yet is retried the same way.
TRANSIENT = (
    VectorStoreUnavailable,
    VectorStoreLocked,
    EmbedderUnavailable,
    NoActiveModel,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)
RELIABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": 6,
    "soft_time_limit": 300,
    "time_limit": 360,
}
# A message's images: one indexing batch (search/services/indexing.py::BATCH), which bounds the
# memory a task holds; a longer list is split into tasks of this size.
INDEX_CHUNK = indexing.BATCH


def _retry(task, exc: Exception, image_ids: list[str] | None = None):
    if image_ids:
        try:
            sweeping.note_transient_failure(image_ids, f"{type(exc).__name__}: {exc}")
        except (OperationalError, InterfaceError) as db_exc:
            # The database is what failed (a restart): the note cannot be written, but the retry must
            # still be scheduled; the rows stay pending as they were.
            log.warning("%s: could not note the failure (%s); retrying", task.name, db_exc)
    if task.request.is_eager:
        # In-process (the embedded default): the images carry the error and stay pending for the
        # sweeper; a line per call would flood an import of a thousand products (its summary counts them).
        log.debug("%s left images pending (%s); the sweeper will retry", task.name, exc)
        return None
    if task.request.retries >= task.max_retries:
        log.warning("%s gave up for now (%s); the sweeper will retry", task.name, exc)
        return None
    countdown = min(300, 2**task.request.retries * 2)
    raise task.retry(exc=exc, countdown=countdown)


@shared_task(bind=True, name="lookalike.index_images", **RELIABLE)
def index_images(self, image_ids: list[str], since: float | None = None) -> dict:
    """Index ``image_ids`` and, on a worker, other pending uploads along with them. ``since`` (epoch
    seconds): this task was published for uploads, and the uploads added since then that published
    nothing count on it (workers/upload_batching.py)."""
    # In-process (an import's batch of hundreds), one call keeps the pipeline full: the next batch
    # decodes while this one embeds; split into tasks, each batch would start cold.
    if len(image_ids) > INDEX_CHUNK and not self.request.is_eager:
        for start in range(0, len(image_ids), INDEX_CHUNK):
            index_images.delay(image_ids[start : start + INDEX_CHUNK])
        return {"split": len(image_ids)}
    vouched = datetime.fromtimestamp(since, tz=UTC) if since is not None else None
    try:
        if self.request.is_eager:  # in a web request, taking other uploads along would only add latency
            outcome = indexing.index_pending_images(image_ids)
        else:
            if vouched is not None:  # before looking for pending uploads: later ones publish their own
                upload_batching.task_started()
            outcome = indexing.index_with_pending(image_ids, since=vouched)
            # A run that ended on its budget leaves uploads that count on it: the next task goes on. Only
            # after progress: a run that took nothing (the rest claimed by another worker, or by one
            # that died, for CLAIM_S) would otherwise publish the next at once, and that one the next.
            progressed = bool(outcome.indexed or outcome.failed)
            due = progressed and vouched is not None and indexing.pending_left(vouched)
            if due and upload_batching.publish_needed() is not None:
                index_images.delay([], since=since)
    except TRANSIENT as exc:
        return _retry(self, exc, image_ids) or {"error": str(exc)}
    # A product enters the text index with its first image (a search hit is shown as an image); the
    # words read on it follow once read (search/services/image_text.py). Sent from here, once for
    # every image this run took along, rather than once per upload.
    done = [*outcome.indexed, *outcome.failed]
    if done:
        sync_images_text.delay(done)
    return {"indexed": len(outcome.indexed), "failed": len(outcome.failed), "missing": len(outcome.missing)}


@shared_task(
    bind=True,
    name="lookalike.read_image_text",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=3,
    # A message is a handful of images (one upload, one import batch); each has OCR_BUDGET_S.
    soft_time_limit=900,
    time_limit=960,
)
def read_image_text(self, image_ids: list[str]) -> dict:
    """Read the text on the images (skipping those already read from the same bytes)."""
    try:
        outcome = image_text.images_text_read(image_ids)
    except (OperationalError, InterfaceError) as exc:
        if self.request.is_eager or self.request.retries >= self.max_retries:
            # manage.py read_image_text (and the sweep of unread images) picks them up later.
            log.warning("reading text left %s image(s) unread: %s", len(image_ids), exc)
            return {"error": str(exc)}
        raise self.retry(exc=exc, countdown=min(300, 2**self.request.retries * 5)) from exc
    except OcrUnavailable as exc:
        # Not transient: retrying cannot install the models. Said once per message, loudly.
        log.error("cannot read text on images: %s", exc)
        return {"error": str(exc)}
    return {
        "read": len(outcome.read),
        "with_words": outcome.with_words,
        "skipped": len(outcome.skipped),
        "failed": len(outcome.failed),
        "missing": len(outcome.missing),
    }


@shared_task(bind=True, name="lookalike.sweep_image_text", acks_late=True, soft_time_limit=50, time_limit=60)
def sweep_image_text(self) -> int:
    """Queue the reading of images whose text the fast path left unread (one batch per pass)."""
    if not settings.OCR_ENABLED:
        return 0
    due = image_text.images_due_for_text()
    if due:
        read_image_text.delay(due)
    return len(due)


@shared_task(bind=True, name="lookalike.remove_image_points", **RELIABLE)
def remove_image_points(self, image_ids: list[str]) -> int:
    try:
        return payload_sync.remove_image_points(image_ids)
    except TRANSIENT as exc:
        _retry(self, exc)
        return 0


@shared_task(bind=True, name="lookalike.sync_product_payload", **RELIABLE)
def sync_product_payload(self, product_id: int) -> None:
    try:
        payload_sync.sync_product_payload(product_id)
    except TRANSIENT as exc:
        _retry(self, exc)


@shared_task(bind=True, name="lookalike.sync_product_text", **RELIABLE)
def sync_product_text(self, product_ids: list[int]) -> int:
    """Write the products' points in the text index as the catalog has them now."""
    try:
        return text_index.sync_products_text(product_ids)
    except TRANSIENT as exc:
        _retry(self, exc)
        return 0


@shared_task(bind=True, name="lookalike.sync_images_text", **RELIABLE)
def sync_images_text(self, image_ids: list[str]) -> int:
    """Write the text points of the products of new images (a product's first image makes it one)."""
    try:
        return text_index.sync_images_text(image_ids)
    except TRANSIENT as exc:
        _retry(self, exc)
        return 0


@shared_task(bind=True, name="lookalike.sweep_index", acks_late=True, soft_time_limit=50, time_limit=60)
def sweep_index(self) -> int:
    """The repair path behind every fast path: re-enqueue images pending too long or failed."""
    due = sweeping.claim_for_sweep()
    for start in range(0, len(due), INDEX_CHUNK):
        index_images.delay(due[start : start + INDEX_CHUNK])
    try:
        index_building.index_optimize_if_due()
    except (VectorStoreError, NoActiveModel) as exc:
        log.warning("index check skipped: %s", exc)
    return len(due)


@shared_task(
    bind=True,
    name="lookalike.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
)
def run_job(self, job_id: int) -> str:
    """Run one queued job (search.models.Job) to its end. A redelivered or duplicate message finds the
    job taken (or finished) and returns; a job whose worker died is re-queued by ``recover_jobs``."""
    job = records.job_claim(job_id=job_id)
    if job is None:
        return "not queued"
    return runner.job_run(job).state


@shared_task(bind=True, name="lookalike.recover_jobs", acks_late=True, soft_time_limit=50, time_limit=60)
def recover_jobs(self) -> int:
    """Jobs whose runner stopped beating: re-queued (announced again) or failed with the reason."""
    return len(records.job_recover_stale())


@shared_task(
    bind=True, name="lookalike.purge_search_photos", acks_late=True, soft_time_limit=600, time_limit=660
)
def purge_search_photos(self) -> dict:
    """Delete shoppers' photos past SEARCH_LOG_RETENTION_DAYS (rows and files). Idempotent: a rerun
    finds nothing left to delete."""
    outcome = search_logs.search_photos_purge()
    if outcome.photos or outcome.orphan_files:
        log.info("purged %s search photo(s) and %s orphan file(s)", outcome.photos, outcome.orphan_files)
    return {"photos": outcome.photos, "orphan_files": outcome.orphan_files}


@shared_task(bind=True, name="lookalike.balance_answers", acks_late=True, soft_time_limit=240, time_limit=300)
def balance_answers(self) -> dict:
    """Fit the active model's balanced answers when enough photo searches were logged since its last
    fit (search/services/balance.py); otherwise nothing."""
    model = selectors.active_model()
    if model is None or not balance.balance_due(model):
        return {"fitted": False}
    outcome = balance.balance_fit(model)
    return {"fitted": not outcome.skipped, "queries": outcome.queries, "products": outcome.products,
            "skipped": outcome.skipped}  # fmt: skip


# --- catalog sync ---------------------------------------------------------------------------------

# Image downloads per task: one task's worth of images is also one indexing batch (INDEX_CHUNK).
FETCH_CHUNK = INDEX_CHUNK


@shared_task(
    bind=True,
    name="lookalike.sync_run",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 60,
)
def sync_run(self, run_id: int) -> str:
    """Read and apply one queued catalog sync. A redelivered task finds the run claimed and returns."""
    run = SyncRun.objects.filter(pk=run_id).select_related("source").first()
    if run is None:
        return "missing"
    return catalog_sync.sync_run_execute(run).state


@shared_task(bind=True, name="lookalike.fetch_sync_images", **RELIABLE)
def fetch_sync_images(self, fetch_ids: list[int]) -> dict:
    """Download a batch of a sync's image URLs; each failure is recorded on its run, not raised."""
    if len(fetch_ids) > FETCH_CHUNK:
        for start in range(0, len(fetch_ids), FETCH_CHUNK):
            fetch_sync_images.delay(fetch_ids[start : start + FETCH_CHUNK])
        return {"split": len(fetch_ids)}
    try:
        outcome = catalog_sync.sync_images_fetch(fetch_ids=fetch_ids)
    except TRANSIENT as exc:
        return _retry(self, exc) or {"error": str(exc)}
    return {"fetched": outcome.fetched, "unchanged": outcome.unchanged, "failed": outcome.failed}


@shared_task(bind=True, name="lookalike.sync_due_sources", acks_late=True, soft_time_limit=50, time_limit=60)
def sync_due_sources(self) -> dict:
    """Start the catalog sources that are due; queue again downloads a lost worker left pending."""
    started = catalog_sync.sources_start_due()
    requeued = catalog_sync.fetches_requeue_stale()
    return {"started": len(started), "requeued": len(requeued)}


@shared_task(
    bind=True, name="lookalike.purge_inactive_products", acks_late=True, soft_time_limit=600, time_limit=660
)
def purge_inactive_products(self) -> int:
    """Delete products deactivated longer ago than the retention period (CATALOG_SYNC_RETENTION_DAYS)."""
    return activation.products_purge_inactive()
