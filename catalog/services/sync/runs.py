"""A sync run's record: creating it, its state, its counters and its error rows.

Counters are written with ``UPDATE ... SET n = n + k`` (never by saving the whole row): the run
reading the feed and the workers fetching its images update the same row at the same time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db.models import F
from django.utils import timezone

from catalog.errors import CatalogError
from catalog.feeds import FeedProduct
from catalog.models import (
    CatalogSource,
    FeedChoice,
    FetchState,
    ImageFetch,
    ProductImage,
    SyncOrigin,
    SyncProblem,
    SyncRun,
    SyncState,
)

log = logging.getLogger(__name__)

# Error rows kept per run. Every error is counted (``error_count``); a feed that is wrong on every
# line would otherwise write 100,000 rows nobody reads past the first screen.
MAX_ERROR_ROWS = 1000

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser


@dataclass(frozen=True)
class ErrorRow:
    code: str
    message: str
    position: int | None = None
    unit: str = ""
    sku: str = ""
    url: str = ""
    fatal: bool = False

    @classmethod
    def about(cls, record: FeedProduct, code: str, message: str, *, url: str = "") -> ErrorRow:
        """An error about one feed product, placed at its line or item."""
        return cls(code, message, position=record.position or None, unit=record.unit, sku=record.sku, url=url)


def sync_run_create(
    *,
    location: str,
    origin: str,
    requested_format: str = FeedChoice.AUTO,
    full: bool = False,
    images: bool = True,
    source: CatalogSource | None = None,
    upload: str = "",
    requested_by: AbstractBaseUser | AnonymousUser | None = None,
) -> SyncRun:
    """Record a queued run. ``location`` is a file path or an http(s) URL (``push`` for the API)."""
    if requested_format not in FeedChoice.values:
        raise CatalogError(
            "invalid_parameter",
            f"format must be one of {', '.join(FeedChoice.values)}, got {requested_format!r}.",
            "format",
        )
    if origin not in SyncOrigin.values:
        raise CatalogError("invalid_parameter", f"unknown sync origin {origin!r}.", "origin")
    return SyncRun.objects.create(
        location=location[:2000],
        origin=origin,
        requested_format=requested_format,
        full=full,
        images=images,
        source=source,
        upload=upload,
        # A request's user may be anonymous (an API key without a staff account): then nobody is named.
        requested_by=requested_by if isinstance(requested_by, get_user_model()) else None,
    )


def claim(run_id: int) -> bool:
    """Move a queued run to running; False if another process took it (or it ran already)."""
    now = timezone.now()
    return bool(
        SyncRun.objects.filter(pk=run_id, state=SyncState.QUEUED).update(
            state=SyncState.RUNNING, started_at=now
        )
    )


def add_counts(run_id: int, **counts: int) -> None:
    """Add to the run's counters (``products_created=3, images_failed=1``); zeros are skipped."""
    changes = {name: F(name) + n for name, n in counts.items() if n}
    if changes:
        SyncRun.objects.filter(pk=run_id).update(**changes)


def record_errors(run_id: int, errors: Iterable[ErrorRow]) -> int:
    """Count the errors on the run and keep the first ``MAX_ERROR_ROWS`` of them as rows."""
    rows = list(errors)
    if not rows:
        return 0
    add_counts(run_id, error_count=len(rows))
    room = MAX_ERROR_ROWS - SyncProblem.objects.filter(run_id=run_id).count()
    fatal = [r for r in rows if r.fatal]
    # The error that ended a run is kept even when the table is full: it is the one people look for.
    kept = rows[: max(room, 0)] + [r for r in fatal if r not in rows[: max(room, 0)]]
    SyncProblem.objects.bulk_create(
        SyncProblem(
            run_id=run_id,
            position=r.position,
            unit=r.unit,
            sku=r.sku[:64],
            url=r.url[:2000],
            code=r.code[:40],
            message=r.message,
            fatal=r.fatal,
        )
        for r in kept
    )
    return len(rows)


def mark_parsed(run_id: int, *, format: str, not_modified: bool = False) -> None:
    SyncRun.objects.filter(pk=run_id).update(
        format=format, parsed_at=timezone.now(), feed_not_modified=not_modified
    )


def fail(run_id: int, message: str) -> None:
    """End the run as failed (the feed could not be read, or broke before its end)."""
    SyncRun.objects.filter(pk=run_id).exclude(state__in=[SyncState.DONE, SyncState.FAILED]).update(
        state=SyncState.FAILED, message=message[:5000], finished_at=timezone.now()
    )
    _release_upload(run_id)


def close_reading(run_id: int) -> None:
    """The feed has been read and applied: done now, or once the workers have fetched its images."""
    SyncRun.objects.filter(pk=run_id, state=SyncState.RUNNING).update(state=SyncState.FETCHING)
    finish_if_fetched(run_id)
    _release_upload(run_id)


def finish_if_fetched(run_id: int) -> bool:
    """Mark a run done once none of its images waits for a worker (called after each fetch batch)."""
    if ImageFetch.objects.filter(run_id=run_id, state=FetchState.PENDING).exists():
        return False
    return bool(
        SyncRun.objects.filter(pk=run_id, state=SyncState.FETCHING).update(
            state=SyncState.DONE, finished_at=timezone.now()
        )
    )


def _release_upload(run_id: int) -> None:
    # A pushed body is read once; the run's counts and errors are what stays.
    name = SyncRun.objects.filter(pk=run_id).values_list("upload", flat=True).first()
    if not name:
        return
    try:
        default_storage.delete(name)
    except OSError:
        log.warning("could not delete the pushed feed %s of sync run %s", name, run_id)
    SyncRun.objects.filter(pk=run_id).update(upload="")


def run_summary(run: SyncRun) -> str:
    """One line of what a run did, for commands and job logs."""
    if run.feed_not_modified:
        return f"sync #{run.pk} {run.state}: the feed has not changed since the last sync (HTTP 304)."
    return (
        f"sync #{run.pk} {run.state} in {run.duration_s or 0:.1f} s: {run.records} product(s) read; "
        f"{run.products_created} created, {run.products_updated} updated, {run.products_unchanged} unchanged, "
        f"{run.products_reactivated} reactivated, {run.products_removed} removed; images {run.images_fetched} "
        f"fetched, {run.images_added} added from files, {run.images_unchanged} unchanged, "
        f"{run.images_failed} failed, {run.images_removed} removed; {run.error_count} error(s)."
    )


def error_line(error: SyncProblem) -> str:
    """One line per kept error: where (line, item or URL), which sku, the code and the message."""
    where = f"{error.unit} {error.position}" if error.position is not None else (error.url or "feed")
    who = f" (sku {error.sku})" if error.sku else ""
    url = f" [{error.url}]" if error.url and error.position is not None else ""
    return f"{where}{who}: {error.code}: {error.message}{url}"


def new_image_ids(run: SyncRun) -> list[str]:
    """Images created since the run started (what it added), for their index status."""
    since = run.started_at
    return [str(pk) for pk in ProductImage.objects.filter(created_at__gte=since).values_list("pk", flat=True)]
