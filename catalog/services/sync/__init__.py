"""Catalog sync: bring a shop's catalog in from the feeds it already has, and keep it in step.

One import path for every source: ``manage.py sync_catalog`` (a file or a URL; ``import_catalog`` is
its JSONL alias), scheduled catalog sources (Celery beat or the embedded thread), the admin's "sync
now", and feeds pushed to ``POST /api/v1/catalog/sync/``. Each is a ``SyncRun``:

1. ``sync_run_create`` records it (queued); ``scheduling`` starts runs that come from a source or a push.
2. ``sync_run_execute`` reads the feed with ``catalog.feeds`` (streaming) and applies it in batches:
   products by sku through the catalog's services (so payload changes reach the vectors as for any
   edit), local manifest images at once, image URLs recorded as ``ImageFetch`` rows for the workers.
   A full run then deactivates the products of its scope that the feed no longer lists.
3. ``sync_images_fetch`` (the ``lookalike.fetch_sync_images`` task) downloads those URLs through
   ``catalog.fetching`` and adds what changed; new images are announced for indexing.

Layout: opening.py (file / URL / push, parser choice), products.py (product diff), image_plan.py (image
plan), downloads.py (worker side), execute.py (the run), runs.py (the run's row, counters, errors),
scheduling.py (sources, pushes, lost downloads). Retention of deactivated products:
``catalog.services.activation``.
"""

from catalog.services.sync.downloads import FetchOutcome, sync_images_fetch
from catalog.services.sync.execute import SyncOptions, sync_run_execute
from catalog.services.sync.runs import MAX_ERROR_ROWS, sync_run_create
from catalog.services.sync.scheduling import (
    fetches_requeue_stale,
    source_sync_start,
    sources_start_due,
    sync_push_start,
)

__all__ = [
    "MAX_ERROR_ROWS",
    "FetchOutcome",
    "SyncOptions",
    "fetches_requeue_stale",
    "source_sync_start",
    "sources_start_due",
    "sync_images_fetch",
    "sync_push_start",
    "sync_run_create",
    "sync_run_execute",
]
