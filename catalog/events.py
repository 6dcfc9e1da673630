"""Index-keeping work that catalog writes trigger, always enqueued after the transaction commits.

A rolled-back write therefore enqueues nothing, and a worker never sees a row that isn't there yet.

Enqueues are ``robust``: once the write has committed, a broker that is down must not turn it into an
error for the caller (a 500 for an upload that was saved), nor skip the callbacks after it (releasing
files). The error is logged; the rows stay pending for the sweeper, and `reconcile_index` repairs
points and payloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db import transaction


def _tasks():  # imported late: workers.tasks imports the catalog and search services
    from workers import tasks

    return tasks


def images_added(image_ids: Iterable[UUID | str]) -> None:
    ids = [str(i) for i in image_ids]
    if ids:
        transaction.on_commit(lambda: _tasks().index_images.delay(ids), robust=True)


def images_removed(image_ids: Iterable[UUID | str]) -> None:
    ids = [str(i) for i in image_ids]
    if ids:
        transaction.on_commit(lambda: _tasks().remove_image_points.delay(ids), robust=True)


def product_changed(product_id: int) -> None:
    transaction.on_commit(lambda: _tasks().sync_product_payload.delay(product_id), robust=True)


def files_released(names: Iterable[str]) -> None:
    """Delete files no row references any more, once the deleting transaction has committed."""
    from catalog.storage import delete_if_unreferenced

    pending = [n for n in names if n]
    if pending:
        transaction.on_commit(lambda: [delete_if_unreferenced(n) for n in pending])
