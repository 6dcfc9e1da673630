"""What the catalog announces. Services send these once their transaction commits; the catalog
never knows who listens (``workers`` turns them into indexing tasks, see workers/subscribers.py).

A rolled-back write therefore announces nothing, and a listener never sees a row that isn't there yet.
Announcements are ``robust``: once the write has committed, a listener that fails (a broker that is
down, say) must not turn it into an error for the caller nor skip the callbacks after it; Django logs
the error, the rows stay pending for the sweeper, and ``reconcile_index`` repairs the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.db import transaction
from django.dispatch import Signal

# image_ids: list[str] — new images that need embedding.
images_added = Signal()
# image_ids: list[str] — images an editor asked to index again (admin action, API).
images_reindex_requested = Signal()
# image_ids: list[str] — deleted images (their vectors must go).
images_removed = Signal()
# product_id: int, fields: frozenset[str] — a product's fields changed; product_id may no longer exist.
product_changed = Signal()
# run_id: int — a catalog sync run was queued (a pushed feed, a due source, the admin's "sync now").
sync_requested = Signal()
# fetch_ids: list[int] — image URLs a sync recorded for download (catalog.models.ImageFetch).
image_fetches_requested = Signal()


def announce(signal: Signal, **payload: Any) -> None:
    """Send ``signal`` with ``payload`` after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: signal.send(sender=__name__, **payload), robust=True)


def ids(image_ids: Iterable[UUID | str]) -> list[str]:
    return [str(i) for i in image_ids]
