"""Turning what the apps announce into tasks: the one place that connects catalog and search events
to Celery. Connected once, when the workers app is ready (workers/apps.py).

Announcements arrive after the write committed (catalog.events / search.events ``announce``), so a
task never runs before its rows exist, and a rolled-back write enqueues nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from catalog import events as catalog_events
from search import events as search_events
from search.payloads import affects_payload
from workers import embedded, tasks, upload_batching


def _index(sender: Any, image_ids: list[str], **_: Any) -> None:
    if image_ids:
        tasks.index_images.delay(list(image_ids))


def _index_added(sender: Any, image_ids: list[str], **_: Any) -> None:
    # New uploads share a queued task where they can (workers/upload_batching.py); re-index requests
    # name older images, which only their own task is sure to take.
    if not upload_batching.applies(len(image_ids)):
        _index(sender, image_ids)
        return
    since = upload_batching.publish_needed()
    if since is not None:
        tasks.index_images.delay(list(image_ids), since=since)


def _read_text(sender: Any, image_ids: list[str], **_: Any) -> None:
    # Never in the request that added the images: with no broker, tasks would run eagerly right here,
    # so the embedded default reads on its own low-priority thread instead.
    if not image_ids or not settings.OCR_ENABLED:
        return
    if settings.CELERY_TASK_ALWAYS_EAGER:
        embedded.submit_text_reading(list(image_ids))
    else:
        tasks.read_image_text.delay(list(image_ids))


def _remove(sender: Any, image_ids: list[str], **_: Any) -> None:
    if image_ids:
        tasks.remove_image_points.delay(list(image_ids))


def _product_changed(sender: Any, product_id: int, fields: frozenset[str], **_: Any) -> None:
    # A title or description edit changes no image point: results read those from the catalog.
    if affects_payload(fields):
        tasks.sync_product_payload.delay(product_id)
    # The text index holds the title, description, brand and attributes too, and the same filter fields.
    tasks.sync_product_text.delay([product_id])


def _job(sender: Any, job_id: int, **_: Any) -> None:
    # With no broker, tasks would run eagerly right here, inside the request or command that submitted
    # the job; the embedded runner thread of the process that owns the store polls for it instead.
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        tasks.run_job.delay(job_id)


def _sync_requested(sender: Any, run_id: int, **_: Any) -> None:
    # In-process tasks would read the whole feed inside the request that queued it (an API push, the
    # admin's "sync now"); the embedded default runs it on its background thread instead.
    if settings.CELERY_TASK_ALWAYS_EAGER:
        embedded.submit_sync_run(run_id)
    else:
        tasks.sync_run.delay(run_id)


def _fetch_images(sender: Any, fetch_ids: list[int], **_: Any) -> None:
    if fetch_ids:
        tasks.fetch_sync_images.delay(list(fetch_ids))


def connect() -> None:
    # dispatch_uid makes a second connect() (tests re-importing, autoreload) a no-op.
    catalog_events.images_added.connect(_index_added, dispatch_uid="workers.index.added")
    catalog_events.images_reindex_requested.connect(_index, dispatch_uid="workers.index.requested")
    # A re-index request reads again only images whose bytes or engine changed (the rest are skipped).
    catalog_events.images_added.connect(_read_text, dispatch_uid="workers.text.added")
    catalog_events.images_reindex_requested.connect(_read_text, dispatch_uid="workers.text.requested")
    catalog_events.images_removed.connect(_remove, dispatch_uid="workers.remove")
    catalog_events.product_changed.connect(_product_changed, dispatch_uid="workers.payload")
    search_events.index_requested.connect(_index, dispatch_uid="workers.index.search")
    catalog_events.sync_requested.connect(_sync_requested, dispatch_uid="workers.sync")
    catalog_events.image_fetches_requested.connect(_fetch_images, dispatch_uid="workers.sync.images")
    search_events.job_submitted.connect(_job, dispatch_uid="workers.job")
