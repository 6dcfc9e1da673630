"""Products leaving and rejoining the shop's catalog, and their deletion once they stayed away.

A full catalog sync deactivates the products its source no longer lists: they leave search at once
(``product_changed(fields={"active"})`` updates their vectors' payloads; the catalog selectors behind
search skip them even before that) but stay in the database, images and vectors included, so a
product that was only missing from one feed comes back without a download or an embedding. After
``CATALOG_SYNC_RETENTION_DAYS`` they are deleted for good (``products_purge_inactive``, run by the
periodic task ``lookalike.purge_inactive_products`` or the embedded default's thread).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog import events
from catalog.models import Product
from catalog.services.products import product_delete

ACTIVE_FIELDS = frozenset({"active"})


@transaction.atomic
def products_deactivate(*, product_ids: Iterable[int], now: datetime | None = None) -> int:
    """Mark active products inactive; returns how many changed. Each is announced after commit."""
    now = now or timezone.now()
    ids = list(
        Product.objects.select_for_update()
        .filter(pk__in=list(product_ids), active=True)
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    Product.objects.filter(pk__in=ids).update(active=False, deactivated_at=now, updated_at=now)
    for product_id in ids:
        events.announce(events.product_changed, product_id=product_id, fields=ACTIVE_FIELDS)
    return len(ids)


@transaction.atomic
def product_reactivate(*, product: Product) -> bool:
    """Bring a deactivated product back (its source lists it again); False if it was active."""
    if product.active:
        return False
    product.active = True
    product.deactivated_at = None
    product.save(update_fields=["active", "deactivated_at", "updated_at"])
    events.announce(events.product_changed, product_id=product.pk, fields=ACTIVE_FIELDS)
    return True


def retention() -> timedelta:
    return timedelta(days=settings.CATALOG_SYNC_RETENTION_DAYS)


def products_purge_inactive(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Delete products inactive for longer than the retention period (images, files and vectors go
    with them, as for any product delete); returns how many. At most ``limit`` per call, each in
    its own transaction, so a large purge neither holds one long lock nor starves other writers."""
    cutoff = (now or timezone.now()) - retention()
    due = list(
        Product.objects.filter(active=False, deactivated_at__lt=cutoff)
        .order_by("deactivated_at")
        .values_list("pk", flat=True)[:limit]
    )
    purged = 0
    for product_id in due:
        with transaction.atomic():
            # Re-read under a lock: a sync may have brought it back since the list was read.
            product = Product.objects.select_for_update().filter(pk=product_id, active=False).first()
            if product is None or product.deactivated_at is None or product.deactivated_at >= cutoff:
                continue
            product_delete(product=product)
            purged += 1
    return purged
