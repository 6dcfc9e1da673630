"""The workers' half of a sync: download the image URLs a run recorded, add what is new, and count.

Called by the ``lookalike.fetch_sync_images`` task with a batch of ``ImageFetch`` ids (never in a web
request). Downloads run on a few threads through ``catalog.fetching`` (address guard, redirects,
timeouts, byte and pixel caps, retries with backoff on timeouts and 5xx, at most
``per_host_concurrency`` connections per host in this process); every database write happens on the
calling thread. A URL that fails is an error row on its run, never an exception: the batch goes on.
A URL asked again with its stored validators may answer 304, or the same bytes (same SHA-256): both
count as unchanged and write nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from catalog.fetching import (
    FetchError,
    FetchPolicy,
    FetchResult,
    HostLimiter,
    fetch_image,
    policy_from_settings,
)
from catalog.models import FetchState, ImageFetch, ImageSource, ProductImage
from catalog.services.images import NewImage, product_image_delete, product_images_add_many
from catalog.services.sync import runs
from catalog.services.sync.image_plan import announce_added
from catalog.services.sync.runs import ErrorRow
from ml.preprocess import ImageInfo

# Downloaded bytes held before they are written as one batch: a batch is a few queries, not a few per
# image, and this bounds the memory a task holds (one INDEX_CHUNK of product photos is 5-30 MB).
ADD_BATCH_BYTES = 32 * 1024 * 1024


@dataclass
class FetchOutcome:
    fetched: int = 0
    unchanged: int = 0
    failed: int = 0
    added_image_ids: list[str] = field(default_factory=list)


def sync_images_fetch(
    *,
    fetch_ids: Iterable[int],
    policy: FetchPolicy | None = None,
    limiter: HostLimiter | None = None,
    threads: int | None = None,
) -> FetchOutcome:
    """Download the pending fetches among ``fetch_ids``; announce the new images once, for indexing."""
    now = timezone.now()
    ids = list(fetch_ids)
    # Claiming makes a replayed or duplicated task a no-op for fetches another one already finished.
    fetches = list(
        ImageFetch.objects.filter(pk__in=ids, state=FetchState.PENDING).select_related("product", "replaces")
    )
    ImageFetch.objects.filter(pk__in=[f.pk for f in fetches]).update(claimed_at=now)
    outcome = FetchOutcome()
    if not fetches:
        return outcome
    policy = policy or policy_from_settings()
    known = {
        s.url: s for s in ImageSource.objects.filter(url_hash__in={ImageSource.key(f.url) for f in fetches})
    }
    errors: dict[int, list[ErrorRow]] = {}
    to_add: list[tuple[ImageFetch, FetchResult]] = []
    held = 0
    workers = max(1, min(threads or settings.CATALOG_SYNC_FETCH_THREADS, len(fetches)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lookalike-fetch") as pool:
        futures = {pool.submit(_download, f, known.get(f.url), policy, limiter): f for f in fetches}
        for future in as_completed(futures):
            fetch = futures[future]
            result = future.result()
            if _settle(fetch, result, known, now, outcome, errors.setdefault(fetch.run_id, [])):
                continue
            assert isinstance(result, FetchResult)
            to_add.append((fetch, result))
            held += result.byte_count
            if held >= ADD_BATCH_BYTES:
                _add_batch(to_add, outcome)
                to_add, held = [], 0
    _add_batch(to_add, outcome)
    # One statement each for the batch: what we now know of each URL, and each fetch's outcome.
    _save_sources([known[f.url] for f in fetches])
    ImageFetch.objects.bulk_update(fetches, ["state", "reason"])
    announce_added(outcome.added_image_ids)
    per_run: dict[int, Counter[str]] = {}
    for fetch in fetches:
        per_run.setdefault(fetch.run_id, Counter())[fetch.state] += 1
    for run_id, counts in per_run.items():
        runs.add_counts(
            run_id,
            images_fetched=counts[FetchState.FETCHED],
            images_unchanged=counts[FetchState.UNCHANGED],
            images_failed=counts[FetchState.FAILED],
        )
        runs.record_errors(run_id, errors.get(run_id, []))
        runs.finish_if_fetched(run_id)
    return outcome


def _download(
    fetch: ImageFetch, source: ImageSource | None, policy: FetchPolicy, limiter: HostLimiter | None
) -> FetchResult | FetchError:
    # Validators only when we still hold the bytes they describe (the image this fetch may replace).
    held = (
        source
        if fetch.replaces is not None and source is not None and source.sha256 == fetch.replaces.sha256
        else None
    )
    try:
        return fetch_image(
            fetch.url,
            policy,
            etag=(held.etag or None) if held else None,
            last_modified=(held.last_modified or None) if held else None,
            limiter=limiter,
        )
    except FetchError as exc:
        return exc


def _settle(
    fetch: ImageFetch,
    result: FetchResult | FetchError,
    known: dict[str, ImageSource],
    now: datetime,
    outcome: FetchOutcome,
    errors: list[ErrorRow],
) -> bool:
    """Record what a download says about its URL; settle the fetch if it failed or found nothing new
    (True), or leave it to ``_add_batch`` (False)."""
    source = known.get(fetch.url) or ImageSource(url_hash=ImageSource.key(fetch.url), url=fetch.url[:2000])
    known[fetch.url] = source
    source.checked_at = now
    if isinstance(result, FetchError):
        fetch.state, fetch.reason = FetchState.FAILED, result.reason[:40]
        source.error = result.reason[:40]
        errors.append(ErrorRow(result.reason, result.message, sku=fetch.product.sku, url=fetch.url))
        outcome.failed += 1
        return True
    source.error = ""
    if result.etag is not None:
        source.etag = result.etag[:300]
    if result.last_modified is not None:
        source.last_modified = result.last_modified[:100]
    replaced = fetch.replaces
    if result.not_modified or (replaced is not None and replaced.sha256 == result.sha256):
        fetch.state = FetchState.UNCHANGED
        outcome.unchanged += 1
        return True
    source.sha256 = result.sha256 or ""
    return False


def _validated_info(result: FetchResult) -> ImageInfo:
    if result.image is None:  # fetch_image validates the bytes: a 200 always carries their info
        raise ValueError(f"fetch of {result.url} has no image info")
    return result.image


def _add_batch(downloads: list[tuple[ImageFetch, FetchResult]], outcome: FetchOutcome) -> None:
    if not downloads:
        return
    added = product_images_add_many(
        images=[
            NewImage(
                product=fetch.product,
                data=result.content,
                info=_validated_info(result),
                original_name=PurePosixPath(urlsplit(fetch.url).path).name,
                display_order=fetch.position,
                source_url=fetch.url,
            )
            for fetch, result in downloads
        ]
    )
    for (fetch, _), done in zip(downloads, added, strict=True):
        if done is None:  # the product was deleted while its picture downloaded
            fetch.state, fetch.reason = FetchState.FAILED, "product_gone"
            outcome.failed += 1
            continue
        replaced = fetch.replaces
        if replaced is not None and ProductImage.objects.filter(pk=replaced.pk).exists():
            # The shop changed the picture behind the same URL: the new one takes its place.
            product_image_delete(image=replaced)
        if done.created:
            outcome.added_image_ids.append(str(done.image.pk))
        fetch.state = FetchState.FETCHED
        outcome.fetched += 1


def _save_sources(sources: list[ImageSource]) -> None:
    rows = {
        s.url_hash: ImageSource(
            url_hash=s.url_hash,
            url=s.url,
            etag=s.etag,
            last_modified=s.last_modified,
            sha256=s.sha256,
            checked_at=s.checked_at,
            error=s.error,
        )
        for s in sources
    }
    ImageSource.objects.bulk_create(
        rows.values(),
        update_conflicts=True,
        unique_fields=["url_hash"],
        update_fields=["url", "etag", "last_modified", "sha256", "checked_at", "error"],
    )
