"""Uploads sharing one queued indexing task (workers/upload_batching.py), with this process's own
in-thread worker where the task's budget must be cut short, and without a cache to agree on."""

from __future__ import annotations

import time

import pytest
import redis

from catalog import services
from catalog.models import IndexStatus, ProductImage
from config.celery import app
from config.settings.env import cache_from_url
from search.services import indexing
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import QUEUES, wait_until
from tests.support.model_fixtures import shared_redis_cache
from workers import upload_batching

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _upload(count: int, sku: str = "P") -> None:
    product = services.product_create(sku=sku, title=sku, price="5")
    for n in range(count):
        services.product_image_add(product=product, data=image_bytes(color=(40 * n, 60, 180), pattern=n + 1))


def test_a_run_cut_short_by_its_budget_publishes_the_next_one(
    celery_over_redis, active_model, settings, monkeypatch
) -> None:
    from celery.contrib.testing.worker import start_worker

    shared_redis_cache(settings, celery_over_redis)
    # Each run takes one batch of two and stops: the uploads that counted on it must not be stranded.
    monkeypatch.setattr(indexing, "BATCH", 2)
    monkeypatch.setattr(indexing, "PULL_BUDGET_S", 0.0)
    _upload(5)
    assert redis.Redis.from_url(celery_over_redis).llen("index") == 1
    with start_worker(app, pool="solo", perform_ping_check=False, queues=list(QUEUES), shutdown_timeout=30):
        wait_until(
            lambda: not ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).exists(),
            60,
            "every upload indexed by a chain of runs",
        )
    assert ProductImage.objects.filter(index_status=IndexStatus.INDEXED).count() == 5


def test_without_a_shared_cache_every_upload_publishes(celery_over_redis, active_model, settings) -> None:
    client = redis.Redis.from_url(celery_over_redis)
    # The tests' own cache is per process: a worker would never see the mark cleared.
    assert not upload_batching.applies(1)
    _upload(2, "LOCAL")
    assert client.llen("index") == 2
    # A Redis cache that does not answer: the upload publishes as before, and nothing fails.
    settings.CACHES = {"default": cache_from_url("redis://127.0.0.1:1/0")}
    assert upload_batching.applies(1)
    _upload(2, "DOWN")
    assert client.llen("index") == 4
    assert ProductImage.objects.count() == 4


def test_in_process_tasks_and_imports_never_share(settings, broker_url) -> None:
    shared_redis_cache(settings, broker_url)
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default indexes each upload in its request
    assert not upload_batching.applies(1)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert upload_batching.applies(upload_batching.MAX_IMAGES)
    assert not upload_batching.applies(upload_batching.MAX_IMAGES + 1)  # an import's batch names its images


def test_a_run_that_takes_nothing_publishes_no_next_one(celery_over_redis, active_model, settings) -> None:
    # Uploads claimed by another worker (or by one that died, until its claims expire) are not this
    # run's to take; publishing the next run regardless would hand the same nothing on and on.
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun
    from django.core.cache import cache

    shared_redis_cache(settings, celery_over_redis)
    _upload(5)
    first, *others = [
        str(pk) for pk in ProductImage.objects.order_by("created_at").values_list("pk", flat=True)
    ]
    for image_id in others:
        cache.add(f"lookalike:index-claim:{image_id}", 1, timeout=indexing.CLAIM_S)
    runs: list[str] = []

    def count(sender=None, **_) -> None:
        if sender is not None and sender.name == "lookalike.index_images":
            runs.append(sender.name)

    task_postrun.connect(count, weak=False)
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, queues=list(QUEUES), shutdown_timeout=30
        ):
            wait_until(
                lambda: ProductImage.objects.get(pk=first).index_status == IndexStatus.INDEXED,
                60,
                "its own image",
            )
            wait_until(lambda: len(runs) >= 2, 30, "the run after the first (others were pending)")
            time.sleep(2.0)  # a run handing on nothing would have published several more by now
    finally:
        task_postrun.disconnect(count)
    assert len(runs) == 2
    assert (
        ProductImage.objects.filter(index_status=IndexStatus.PENDING).count() == 4
    )  # left to their claimant
