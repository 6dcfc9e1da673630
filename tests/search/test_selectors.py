"""Reads of the search app's state."""

from __future__ import annotations

import pytest

from catalog import services
from search import selectors
from search.services.reindex import promote
from tests.fixtures.images import image_bytes
from tests.support.reindex import reindex_start

pytestmark = pytest.mark.django_db


def test_write_targets_are_the_active_model_then_the_one_being_filled(active_model, candidate) -> None:
    assert selectors.write_targets() == [active_model]
    reindex_start(candidate)
    assert selectors.write_targets() == [active_model, candidate]


def test_previous_model_is_the_one_that_stepped_down(active_model, candidate) -> None:
    assert selectors.previous_model() is None
    reindex_start(candidate)  # creates the candidate's collection
    promote(candidate)
    assert selectors.previous_model() == active_model
    assert selectors.active_model() == candidate


def test_next_version_is_new_in_the_database_and_on_disk(active_model, settings, tmp_path) -> None:
    settings.MODELS_DIR = tmp_path
    (tmp_path / settings.TF_SERVING_MODEL_NAME / "41").mkdir(parents=True)
    assert selectors.next_version_number() == 42
    (tmp_path / settings.TF_SERVING_MODEL_NAME / "41").rmdir()
    assert selectors.next_version_number() == active_model.version + 1


def test_the_active_model_is_cached_briefly(active_model, candidate) -> None:
    assert selectors.active_model_cached() == active_model
    from search.models import ModelStatus, ModelVersion

    # A change behind this process's back shows only once the cache is dropped (or expires).
    ModelVersion.objects.filter(pk=active_model.pk).update(status=ModelStatus.RETIRED)
    assert selectors.active_model_cached() == active_model
    selectors.forget_active_model()
    assert selectors.active_model_cached() is None


def test_image_ids_in_order_walk_every_image_once(media_root) -> None:
    product = services.product_create(sku="P", title="p")
    for i in range(5):
        services.product_image_add(product=product, data=image_bytes(pattern=i + 1))
    seen, cursor = [], ""
    while batch := selectors.image_ids_in_order(after=cursor, limit=2):
        seen += batch
        cursor = batch[-1]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen)


def test_pending_companions_reach_back_to_since_for_uploads_that_counted_on_a_task(media_root) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from catalog.models import ProductImage

    product = services.product_create(sku="WAIT", title="Waited", price="2")
    old, new = (
        services.product_image_add(
            product=product, data=image_bytes(color=(c, 40, 90), pattern=c), announce=False
        ).image
        for c in (10, 200)
    )
    # An upload that waited 20 minutes behind a busy worker, its task's mark set 25 minutes ago.
    ProductImage.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    assert selectors.pending_companions(exclude=[], limit=10) == [str(new.pk)]
    since = timezone.now() - timedelta(minutes=25)
    assert selectors.pending_companions(exclude=[], limit=10, since=since) == [str(old.pk), str(new.pk)]
    # A later since never narrows the usual ten minutes.
    assert selectors.pending_companions(exclude=[], limit=10, since=timezone.now()) == [str(new.pk)]
