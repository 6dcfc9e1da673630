"""Writes of the search log: each search the API answered, the clicks shoppers report on its results,
and the retention of shoppers' photos."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from catalog import selectors as catalog_selectors
from search import photo_storage
from search.errors import SearchError
from search.models import EventKind, QueryKind, SearchClick, SearchLog, SearchPhoto
from search.services.searching import SearchOutcome, SearchQuery

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

    from apikeys.models import ApiKey

log = logging.getLogger(__name__)
PURGE_BATCH = 500


def query_kind(query: SearchQuery) -> str:
    # Words with a photo or product are logged as that query (the words re-rank its answer).
    if not query.visual:
        return QueryKind.TEXT
    if query.image is not None:
        return QueryKind.PHOTO
    if query.sku is not None:
        return QueryKind.SKU
    if query.product_id is not None:
        return QueryKind.PRODUCT
    return QueryKind.IMAGE


def _filters(query: SearchQuery) -> dict[str, Any]:
    given = {
        "category": query.categories or None,
        "min_price": str(query.min_price) if query.min_price is not None else None,
        "max_price": str(query.max_price) if query.max_price is not None else None,
        "in_stock": query.in_stock,
    }
    return {name: value for name, value in given.items() if value is not None}


def _results(outcome: SearchOutcome) -> list[dict[str, Any]]:
    return [
        {
            "position": position,
            "product_id": hit.card["product_id"],
            "image_id": str(hit.image_id),
            "score": round(float(hit.score), 5),
            # Calibrated models label hits "same"/"similar"; null before calibration.
            "match": getattr(hit, "match", None),
        }
        for position, hit in enumerate(outcome.hits, start=1)
    ]


def _keep_photo(data: bytes, now: datetime) -> SearchPhoto:
    sha256, name = photo_storage.write_photo(data)
    photo, created = SearchPhoto.objects.get_or_create(
        sha256=sha256, defaults={"file": name, "bytes": len(data), "last_searched_at": now}
    )
    if not created:
        SearchPhoto.objects.filter(pk=photo.pk).update(last_searched_at=now)
    return photo


def search_log_record(
    *,
    query: SearchQuery,
    outcome: SearchOutcome,
    api_key: ApiKey | None = None,
    user: AbstractBaseUser | AnonymousUser | None = None,
    client: str = "",
) -> SearchLog | None:
    """Log an answered search under ``outcome.search_id``. Never fails the search: a log that cannot be
    written is reported in the server log and the answer goes out (its clicks are then refused)."""
    now = timezone.now()
    try:
        photo = None
        if query.image is not None and settings.SEARCH_LOG_PHOTOS:
            photo = _keep_photo(query.image, now)
        results = _results(outcome)
        query_product_id = query.product_id
        if query.sku is not None:
            product = catalog_selectors.product_get_by_sku(sku=query.sku)
            query_product_id = product.pk if product is not None else None
        return SearchLog.objects.create(
            id=outcome.search_id,
            created_at=now,
            api_key=api_key,
            user=user if isinstance(user, get_user_model()) else None,  # anonymous: nobody named
            query_kind=query_kind(query),
            query_product_id=query_product_id,
            filters=_filters(query),
            crop=list(query.crop) if query.crop else None,
            limit=query.limit,
            model_version=outcome.model_version,
            latency_ms=float(outcome.timings_ms.get("total", 0.0)),
            results=results,
            result_count=len(results),
            top_product_id=results[0]["product_id"] if results else None,
            no_match=getattr(outcome, "no_match", None),
            photo=photo,
            client=client,
            # For balanced answers (search/services/balance.py, which keeps only its last pool of them):
            # float16, half the bytes, and the fit needs no more precision.
            query_vector=(
                outcome.query_vector.astype(np.float16).tobytes()
                if outcome.query_vector is not None and settings.SEARCH_BALANCE
                else None
            ),
        )
    except (DatabaseError, OSError):
        log.exception("search %s answered but not logged", outcome.search_id)
        return None


def search_click_record(
    *,
    search_id: uuid.UUID | str,
    product_id: int,
    position: int,
    kind: str = EventKind.CLICK,
    api_key: ApiKey | None = None,
) -> SearchClick:
    """Record that a shopper followed result ``position`` (1-based) of a search. The search must exist,
    have been made with the same API key (or none), and have shown that product there."""
    search = SearchLog.objects.filter(pk=search_id).first()
    if search is None or search.api_key_id != (api_key.pk if api_key is not None else None):
        raise SearchError("search_not_found", f"No search {search_id} was made with this key.", "search_id")
    shown = next((r for r in search.results if r.get("position") == position), None)
    if shown is None or shown.get("product_id") != product_id:
        raise SearchError(
            "result_not_shown",
            f"Search {search_id} did not show product {product_id} at position {position}.",
            "position",
        )
    try:
        with transaction.atomic():
            click, _ = SearchClick.objects.get_or_create(
                search=search, position=position, kind=kind, defaults={"product_id": product_id}
            )
    except IntegrityError:  # the same report arrived twice at once; the other one recorded it
        click = SearchClick.objects.get(search=search, position=position, kind=kind)
    return click


@dataclass(frozen=True)
class PurgeOutcome:
    photos: int  # rows deleted, with their files
    orphan_files: int  # files with no row (left by a crash between the two), deleted
    seconds: float


def _delete_photos(names: list[str]) -> None:
    for name in names:
        photo_storage.delete_photo(name)


def search_photos_purge(*, now: datetime | None = None) -> PurgeOutcome:
    """Delete shoppers' photos last searched more than SEARCH_LOG_RETENTION_DAYS ago: the rows, and their
    files once the deletion has committed. The searches stay (their photo becomes null); so do clicks.
    Files older than the retention that no row names are deleted as well."""
    started = time.perf_counter()
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SEARCH_LOG_RETENTION_DAYS)
    deleted = 0
    while True:
        with transaction.atomic():
            batch = list(
                SearchPhoto.objects.select_for_update(skip_locked=True)
                .filter(last_searched_at__lt=cutoff)
                .values_list("pk", "file")[:PURGE_BATCH]
            )
            if not batch:
                break
            SearchPhoto.objects.filter(pk__in=[pk for pk, _ in batch]).delete()
            names = [name for _, name in batch]
            transaction.on_commit(functools.partial(_delete_photos, names))
        deleted += len(batch)
    old_files = photo_storage.files_older_than(cutoff.timestamp())
    known = set(SearchPhoto.objects.filter(file__in=old_files).values_list("file", flat=True))
    orphans = [name for name in old_files if name not in known]
    for name in orphans:
        photo_storage.delete_photo(name)
    return PurgeOutcome(deleted, len(orphans), round(time.perf_counter() - started, 3))
