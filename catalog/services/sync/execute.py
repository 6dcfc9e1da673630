"""Running one sync: read the feed record by record, apply it in batches, remove what a full feed no
longer lists, and hand image URLs to the workers.

Memory stays bounded by the batch (``BATCH``) plus one integer per product seen (for a full run's
removals): the parser streams (catalog.feeds), and each batch is read from and written to the
database in a few statements. A bad record is an error row and the run goes on; a feed that breaks
(a fatal FeedError: truncated, unreadable, empty) ends the run as failed after applying what came
before the break, and removes nothing, since the rest of the feed is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.feeds import FeedError, FeedFormatError, FeedProduct, parse_feed
from catalog.fetching import FetchError
from catalog.models import CatalogSource, Product, SyncRun
from catalog.services.activation import products_deactivate
from catalog.services.sync import runs
from catalog.services.sync.image_plan import (
    LocalImage,
    announce_added,
    announce_fetches,
    check_local_images,
    plan_batch,
)
from catalog.services.sync.opening import open_feed
from catalog.services.sync.products import apply_batch
from catalog.services.sync.runs import ErrorRow

log = logging.getLogger(__name__)

# Feed records per batch: one SELECT of the batch's products, one of their images, one INSERT of new
# products and one of image fetches. 500 keeps a batch's objects to a few MB and the IN lists short.
BATCH = 500
DEACTIVATE_BATCH = 1000


@dataclass(frozen=True)
class SyncOptions:
    """Parser options the run's row does not hold (a command's flags; a source's own settings)."""

    store_url: str | None = None
    default_currency: str | None = None
    # Where a local manifest's image paths are read from (default: the manifest's folder); an operator's
    # choice on the command line, never a feed's.
    images_root: Path | None = None


def sync_run_execute(
    run: SyncRun, *, options: SyncOptions | None = None, progress: Callable[[int], None] | None = None
) -> SyncRun:
    """Run a queued sync in this process (a command, a worker, the embedded thread) and return its
    row as it stands (``fetching`` while workers still download its images). A run another process
    has claimed is returned untouched. ``progress`` is called with each batch's record count."""
    if not runs.claim(run.pk):
        run.refresh_from_db()
        return run
    options = options or _source_options(run.source)
    try:
        _execute(run, options, progress)
    except (FetchError, FeedFormatError, OSError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or "read_error"
        message = getattr(exc, "message", None) or str(exc)
        url = run.location if run.location.lower().startswith(("http://", "https://")) else ""
        runs.record_errors(run.pk, [ErrorRow(reason, message, url=url, fatal=True)])
        runs.fail(run.pk, f"The feed could not be read: {message}")
    except Exception:
        log.exception("sync run %s failed", run.pk)
        runs.fail(run.pk, "The sync stopped on an internal error; see the server log.")
        raise
    run.refresh_from_db()
    return run


def _source_options(source: CatalogSource | None) -> SyncOptions:
    if source is None:
        return SyncOptions(default_currency=settings.CATALOG_SYNC_DEFAULT_CURRENCY)
    return SyncOptions(
        store_url=source.store_url or None,
        default_currency=source.default_currency or settings.CATALOG_SYNC_DEFAULT_CURRENCY,
    )


def _batches(records: Iterator[FeedProduct | FeedError]) -> Iterator[list[FeedProduct | FeedError]]:
    batch: list[FeedProduct | FeedError] = []
    for record in records:
        batch.append(record)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _execute(run: SyncRun, options: SyncOptions, progress: Callable[[int], None] | None) -> None:
    source = run.source
    conditional: dict[str, Any] = {}
    if source is not None and run.location == source.url:
        conditional = {"etag": source.feed_etag or None, "last_modified": source.feed_last_modified or None}
    with open_feed(
        run.location,
        run.requested_format,
        upload=run.upload.name or "",
        images_root=options.images_root,
        **conditional,
    ) as feed:
        if feed.not_modified:
            runs.mark_parsed(run.pk, format="", not_modified=True)
            runs.close_reading(run.pk)
            return
        assert feed.format is not None and feed.stream is not None
        records = parse_feed(
            feed.stream,
            feed.format,
            base_dir=feed.base_dir,
            allow_local_images=feed.allow_local_images,
            store_url=options.store_url,
            default_currency=options.default_currency,
        )
        seen: set[int] = set()
        fatal: FeedError | None = None
        local_dir = feed.base_dir if feed.allow_local_images else None
        for batch in _batches(records):
            fatal = _apply(run, batch, options, seen, local_dir) or fatal
            if progress is not None:
                progress(len(batch))
        runs.mark_parsed(run.pk, format=feed.format)
    if fatal is not None:
        runs.fail(
            run.pk, f"The feed broke at {fatal.unit} {fatal.position}: {fatal.message} Nothing was removed."
        )
        return
    if run.full:
        removed = _deactivate_missing(source, seen)
        runs.add_counts(run.pk, products_removed=removed)
    if source is not None and run.location == source.url and (feed.etag or feed.last_modified):
        CatalogSource.objects.filter(pk=source.pk).update(
            feed_etag=(feed.etag or "")[:300], feed_last_modified=(feed.last_modified or "")[:100]
        )
    runs.close_reading(run.pk)


def _apply(
    run: SyncRun,
    batch: list[FeedProduct | FeedError],
    options: SyncOptions,
    seen: set[int],
    local_dir: Path | None,
) -> FeedError | None:
    errors = [r for r in batch if isinstance(r, FeedError)]
    products = [r for r in batch if isinstance(r, FeedProduct)]
    rows = [
        ErrorRow(
            e.code, e.message, position=e.position, unit=e.unit, sku=e.variant or e.sku or "", fatal=e.fatal
        )
        for e in errors
    ]
    local: dict[str, LocalImage] = {}
    if local_dir is not None and run.images:
        products, refused, local = check_local_images(products, local_dir)
        rows += refused
    with transaction.atomic():
        result = apply_batch(products, source=run.source, default_currency=options.default_currency)
        plan = (
            plan_batch(run.pk, result.products, full=run.full, now=timezone.now(), local=local)
            if run.images
            else None
        )
        rows += result.errors + (plan.errors if plan else [])
        rows.sort(key=lambda r: (r.fatal, r.position if r.position is not None else 1 << 62))  # feed order
        runs.record_errors(run.pk, rows)
        runs.add_counts(
            run.pk,
            records=len(products),
            products_created=result.created,
            products_updated=result.updated,
            products_unchanged=result.unchanged,
            products_reactivated=result.reactivated,
            images_queued=len(plan.fetches) if plan else 0,
            images_added=plan.added if plan else 0,
            images_unchanged=plan.unchanged if plan else 0,
            images_failed=plan.skipped_failed if plan else 0,
            images_removed=plan.removed if plan else 0,
        )
        if plan is not None:
            # After commit: the workers (or, with tasks in-process, this thread) fetch and index them.
            announce_added(plan.added_image_ids)
            announce_fetches(plan.fetches)
    seen.update(p.pk for p, _ in result.products)
    if run.full:
        # A product the feed lists but whose record was refused (a bad price, say) is still in the
        # shop: a full run keeps it as it was rather than taking it out of search.
        refused_skus = {e.sku for e in errors if e.sku} | {r.sku for r in rows if r.sku}
        if refused_skus:
            seen.update(Product.objects.filter(sku__in=refused_skus).values_list("pk", flat=True))
    return next((e for e in errors if e.fatal), None)


def _deactivate_missing(source: CatalogSource | None, seen: set[int]) -> int:
    """Deactivate the active products of the run's scope (its source's products, or those without a
    source for a command or a push) that the feed did not list."""
    scope = Product.objects.filter(active=True)
    scope = scope.filter(source=source) if source is not None else scope.filter(source__isnull=True)
    missing = [pk for pk in scope.values_list("pk", flat=True) if pk not in seen]
    removed = 0
    for start in range(0, len(missing), DEACTIVATE_BATCH):
        removed += products_deactivate(product_ids=missing[start : start + DEACTIVATE_BATCH])
    return removed
