"""Starting runs that do not come from a command: due catalog sources (Celery beat or the embedded
thread), an editor's "sync now", and feeds pushed to the API; and re-queueing image downloads that
a lost worker left behind.

Each start records a queued run and announces ``sync_requested`` after commit; workers/subscribers.py
turns that into the ``lookalike.sync_run`` task (with a broker) or hands it to the embedded default's
background thread, so no web request ever reads a feed or downloads an image.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog import events
from catalog.errors import CatalogError
from catalog.models import CatalogSource, FeedChoice, FetchState, ImageFetch, SyncOrigin, SyncRun, SyncState
from catalog.services.sync.runs import sync_run_create

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

# A download claimed this long ago and still pending was lost with its worker: queue it again.
STALE_FETCH = timedelta(minutes=15)
PUSH_CHUNK = 64 * 1024


def _queue(run: SyncRun) -> SyncRun:
    events.announce(events.sync_requested, run_id=run.pk)
    return run


@transaction.atomic
def source_sync_start(
    *, source: CatalogSource, origin: str = SyncOrigin.ADMIN, now: datetime | None = None
) -> SyncRun:
    """Queue a run of ``source`` now (its next scheduled run counts from here)."""
    now = now or timezone.now()
    CatalogSource.objects.filter(pk=source.pk).update(next_run_at=now + source.interval())
    run = sync_run_create(
        location=source.url, origin=origin, requested_format=source.format, full=source.full, source=source
    )
    return _queue(run)


def sources_start_due(*, now: datetime | None = None) -> list[int]:
    """Queue a run of every enabled source that is due and has no run under way; returns the run ids."""
    now = now or timezone.now()
    busy = SyncRun.objects.filter(state__in=[SyncState.QUEUED, SyncState.RUNNING]).values("source_id")
    due = (
        CatalogSource.objects.filter(enabled=True)
        .filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
        .exclude(pk__in=busy)
    )
    started = []
    for source in due:
        with transaction.atomic():
            # Claimed with a conditional update: two schedulers (beat and a thread, say) start it once.
            claimed = CatalogSource.objects.filter(pk=source.pk, next_run_at=source.next_run_at).update(
                next_run_at=now + source.interval()
            )
            if not claimed:
                continue
            run = sync_run_create(
                location=source.url,
                origin=SyncOrigin.SCHEDULE,
                requested_format=source.format,
                full=source.full,
                source=source,
            )
            started.append(_queue(run).pk)
    return started


def sync_push_start(
    *, body: BinaryIO, user: AbstractBaseUser | AnonymousUser | None, full: bool = False
) -> SyncRun:
    """Store a pushed NDJSON feed (read in chunks, at most ``CATALOG_SYNC_MAX_PUSH_BYTES``) and queue
    its run. Raises CatalogError: ``feed_too_large`` or ``empty_feed``, with nothing kept."""
    limit = settings.CATALOG_SYNC_MAX_PUSH_BYTES
    # Spooled: a small push stays in memory, a large one goes to a temporary file, never all in RAM.
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        size = 0
        while chunk := body.read(PUSH_CHUNK):
            size += len(chunk)
            if size > limit:
                raise CatalogError(
                    "feed_too_large",
                    f"The feed is larger than {limit:,} bytes; split it, or publish it at a URL and add it "
                    "as a catalog source.",
                )
            spool.write(chunk)
        if size == 0:
            raise CatalogError("empty_feed", "The request body is empty; send one JSON object per line.")
        spool.seek(0)
        name = default_storage.save(
            f"sync-uploads/{uuid.uuid4().hex}.ndjson", File(spool, name="push.ndjson")
        )
    try:
        with transaction.atomic():
            run = sync_run_create(
                location="push",
                origin=SyncOrigin.API,
                requested_format=FeedChoice.JSONL,
                full=full,
                upload=name,
                requested_by=user,
            )
            return _queue(run)
    except BaseException:
        default_storage.delete(name)
        raise


def fetches_requeue_stale(*, now: datetime | None = None, limit: int = 5000) -> list[int]:
    """Pending downloads whose worker was lost (claimed long ago, or never claimed), announced again."""
    cutoff = (now or timezone.now()) - STALE_FETCH
    stale = list(
        ImageFetch.objects.filter(state=FetchState.PENDING)
        .filter(Q(claimed_at__lt=cutoff) | Q(claimed_at__isnull=True, created_at__lt=cutoff))
        .values_list("pk", flat=True)[:limit]
    )
    if stale:
        ImageFetch.objects.filter(pk__in=stale).update(claimed_at=now or timezone.now())
        events.announce(events.image_fetches_requested, fetch_ids=stale)
    return stale
