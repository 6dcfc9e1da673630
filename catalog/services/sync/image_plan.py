"""The images of one batch of synced products: which URLs the workers must fetch, which are known
and fresh, which local manifest files to add now, and (full runs) which images the feed dropped.

Images are matched by source URL (``ProductImage.source_url``) and, for local files, by content hash.
Nothing is downloaded here: URLs become ``ImageFetch`` rows for the workers (see downloads.py). What
we know of each URL (``ImageSource``: validators, content hash, last failure) decides whether it is
asked again: an image fetched within ``CATALOG_SYNC_IMAGE_RECHECK_S`` is not, so a re-run of the same
feed makes no request; an older one is asked conditionally (``replaces`` its current image).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction

from catalog import events, image_limits
from catalog.errors import CatalogError
from catalog.feeds import FeedProduct
from catalog.models import FetchState, ImageFetch, ImageSource, Product, ProductImage
from catalog.services.images import product_image_add, product_image_delete
from catalog.services.sync.runs import ErrorRow
from catalog.storage import sha256_of
from ml.preprocess import ImageInfo, ImageRejected

# Transient fetch failures (timeouts, 5xx, dropped connections) are retried by the next run; the
# others (404, not an image, refused address) wait CATALOG_SYNC_IMAGE_RETRY_S.
TRANSIENT_REASONS = frozenset({"timeout", "connection_error", "dns_error"})


@dataclass
class ImagePlan:
    fetches: list[ImageFetch] = field(default_factory=list)
    unchanged: int = 0
    skipped_failed: int = 0
    added: int = 0
    removed: int = 0
    added_image_ids: list[str] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)


def _transient(reason: str) -> bool:
    return reason in TRANSIENT_REASONS or reason.startswith("http_5")


def plan_batch(
    run_id: int,
    products: Sequence[tuple[Product, FeedProduct]],
    *,
    full: bool,
    now: datetime,
    local: dict[str, LocalImage] | None = None,
) -> ImagePlan:
    """Record what the batch's images need; local files (``local``: checked by ``check_local_images``)
    are added at once, URLs are queued."""
    plan = ImagePlan()
    if not products:
        return plan
    ids = [p.pk for p, _ in products]
    current: dict[int, dict[str, tuple[str, str]]] = {}  # product -> source_url or sha256 -> (id, sha)
    for image_id, product_id, url, digest in ProductImage.objects.filter(product_id__in=ids).values_list(
        "id", "product_id", "source_url", "sha256"
    ):
        current.setdefault(product_id, {})[url or f"sha256:{digest}"] = (str(image_id), digest)
    in_flight = set(
        ImageFetch.objects.filter(product_id__in=ids, state=FetchState.PENDING).values_list(
            "product_id", "url"
        )
    )
    urls = {image.url_or_path for _, record in products for image in record.images if image.is_url}
    known = {s.url: s for s in ImageSource.objects.filter(url_hash__in=[ImageSource.key(u) for u in urls])}
    recheck = now - timedelta(seconds=settings.CATALOG_SYNC_IMAGE_RECHECK_S)
    retry = now - timedelta(seconds=settings.CATALOG_SYNC_IMAGE_RETRY_S)
    for product, record in products:
        have = current.get(product.pk, {})
        named: set[str] = set()
        for image in record.images:
            if not image.is_url:
                checked = (local or {}).get(image.url_or_path)
                if checked is None:  # the caller did not check it: never read a file unchecked
                    continue
                key = _add_local(product, record, checked, image.url_or_path, image.position, plan)
                if key:
                    named.add(key)
                continue
            url = image.url_or_path
            named.add(url)
            if (product.pk, url) in in_flight:
                continue
            source = known.get(url)
            mine = have.get(url)
            if source is not None and source.error and source.checked_at:
                if not _transient(source.error) and source.checked_at > retry:
                    plan.skipped_failed += 1
                    plan.errors.append(
                        ErrorRow.about(
                            record,
                            source.error,
                            f"not fetched again: it failed at {source.checked_at:%Y-%m-%d %H:%M} UTC "
                            f"({source.error}); retried after CATALOG_SYNC_IMAGE_RETRY_S.",
                            url=url,
                        )
                    )
                    continue
            elif (
                mine is not None and source is not None and source.checked_at and source.checked_at > recheck
            ):
                plan.unchanged += 1
                continue
            plan.fetches.append(
                ImageFetch(
                    run_id=run_id,
                    product=product,
                    url=url,
                    position=image.position,
                    replaces_id=mine[0] if mine else None,
                )
            )
        if full:
            _remove_dropped(product, have, named, plan)
    ImageFetch.objects.bulk_create(plan.fetches)
    return plan


@dataclass(frozen=True)
class LocalImage:
    """A manifest's local file, read and validated before its product is written."""

    name: str  # as the manifest's folder names it, for messages
    sha256: str
    info: ImageInfo


def check_local_images(
    records: Sequence[FeedProduct], base_dir: Path | None
) -> tuple[list[FeedProduct], list[ErrorRow], dict[str, LocalImage]]:
    """Read and validate every local file the records name, before anything is written: a record
    with a bad file is refused whole (an error row, no product), as a line of the manifest import
    always was. Returns the records to apply, the refusals, and each good file's hash and format."""
    accepted: list[FeedProduct] = []
    refused: list[ErrorRow] = []
    checked: dict[str, LocalImage] = {}
    for record in records:
        problem: ErrorRow | None = None
        for image in record.images:
            path = image.url_or_path
            if image.is_url or path in checked:
                continue
            name = _shown(path, base_dir)
            try:
                data = _read_confined(path)
                checked[path] = LocalImage(name, sha256_of(data), image_limits.validate(data))
            except ImageRejected as exc:
                problem = ErrorRow.about(record, exc.code, f"{name}: {exc.message}")
            except OSError as exc:
                problem = ErrorRow.about(
                    record, "unreadable_file", f"{name}: cannot be read ({exc.strerror or exc})."
                )
            if problem is not None:
                break
        if problem is None:
            accepted.append(record)
        else:
            refused.append(problem)
    return accepted, refused, checked


def _shown(path: str, base_dir: Path | None) -> str:
    try:
        return str(Path(path).relative_to(base_dir)) if base_dir is not None else Path(path).name
    except ValueError:
        return Path(path).name


def _add_local(
    product: Product, record: FeedProduct, local: LocalImage, path: str, position: int, plan: ImagePlan
) -> str | None:
    """Add a manifest's local file, checked by ``check_local_images``; its key, or None."""
    try:
        data = _read_confined(path)
        if sha256_of(data) != local.sha256:
            raise OSError("the file changed while the sync read it")
        with transaction.atomic():
            added = product_image_add(
                product=product,
                data=data,
                original_name=Path(path).name,
                display_order=position,
                info=local.info,
                announce=False,
            )
    except (CatalogError, ImageRejected, OSError) as exc:
        plan.errors.append(ErrorRow.about(record, "unreadable_file", f"{local.name}: {exc}"))
        return None
    if added.created:
        plan.added += 1
        plan.added_image_ids.append(str(added.image.pk))
    else:
        plan.unchanged += 1
    return f"sha256:{sha256_of(data)}" if not added.image.source_url else added.image.source_url


def _read_confined(path: str) -> bytes:
    # The parser resolved the path inside the manifest's folder; O_NOFOLLOW keeps a symlink swapped in
    # since then from leading the read elsewhere.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        image_limits.check_size(os.fstat(handle.fileno()).st_size)
        return handle.read()


def _remove_dropped(
    product: Product, have: dict[str, tuple[str, str]], named: set[str], plan: ImagePlan
) -> None:
    # A full sync makes the product's pictures equal to the feed's: the rest go (and their vectors).
    for key, (image_id, _) in have.items():
        if key in named:
            continue
        image = ProductImage.objects.filter(pk=image_id).first()
        if image is not None:
            product_image_delete(image=image)
            plan.removed += 1


def announce_added(image_ids: list[str]) -> None:
    if image_ids:
        events.announce(events.images_added, image_ids=image_ids)


def announce_fetches(fetches: Sequence[ImageFetch]) -> None:
    if fetches:
        events.announce(events.image_fetches_requested, fetch_ids=[f.pk for f in fetches])
