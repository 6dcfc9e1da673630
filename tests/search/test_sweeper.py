from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search import selectors
from search.services import sweeping
from tests.fixtures.images import image_bytes
from workers.tasks import sweep_index

pytestmark = pytest.mark.django_db


def _age(image, seconds: int) -> None:
    ProductImage.objects.filter(pk=image.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def test_sweeper_indexes_what_the_fast_path_dropped(active_model, media_root) -> None:
    product = services.product_create(sku="S", title="s")
    image = services.product_image_add(product=product, data=image_bytes()).image  # its task never ran
    assert selectors.due_for_sweep() == []  # still inside the grace period
    _age(image, 3600)
    assert sweep_index.apply().get() == 1  # eager: the re-enqueued task runs at once
    image.refresh_from_db()
    assert image.index_status == IndexStatus.INDEXED
    assert sweep_index.apply().get() == 0  # nothing left: re-running is a no-op


def test_backoff_grows_per_image(db, media_root, settings) -> None:
    settings.INDEX_PENDING_GRACE_S = 30
    product = services.product_create(sku="S", title="s")
    image = services.product_image_add(product=product, data=image_bytes()).image
    ProductImage.objects.filter(pk=image.pk).update(index_status=IndexStatus.FAILED, index_attempts=0)
    now = timezone.now()
    waits = []
    for _ in range(4):
        assert sweeping.claim_for_sweep(now) == [str(image.pk)]
        image.refresh_from_db()
        waits.append((image.next_attempt_at - now).total_seconds())
        assert sweeping.claim_for_sweep(now) == []  # not due again until its backoff passes
        now = image.next_attempt_at
    assert waits == [30, 60, 120, 240]


def test_failed_images_stop_after_the_attempt_cap(db, media_root, settings) -> None:
    product = services.product_create(sku="S", title="s")
    image = services.product_image_add(product=product, data=image_bytes()).image
    ProductImage.objects.filter(pk=image.pk).update(
        index_status=IndexStatus.FAILED, index_attempts=settings.INDEX_MAX_ATTEMPTS
    )
    assert selectors.due_for_sweep() == []
