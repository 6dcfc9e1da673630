"""The indexing pipeline with the machine's real Redis and a real `celery worker` process."""

from __future__ import annotations

import os

import pytest
import redis
from django.db import connection

from catalog import services
from catalog.models import IndexStatus, ProductImage
from config.celery import app
from search import runtime
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import QUEUES, WorkerProcess, wait_until, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker_url(settings) -> str:
    url = os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {url}; start it (see README) before the integration tests")
    client.flushdb()
    return url


@pytest.fixture
def celery_over_redis(broker_url, settings):
    """Make this process send tasks to Redis instead of running them eagerly."""
    previous = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.update(task_always_eager=False, broker_url=broker_url)
    _reset_pool()
    yield broker_url
    app.conf.update(**previous)
    _reset_pool()


def _reset_pool() -> None:
    # The producer pool was built for the previous broker URL; drop it so the next send reconnects.
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None


@pytest.fixture
def worker(celery_over_redis, active_model, exported_bootstrap, media_root, vector_store_path, tmp_path):
    runtime.reset_vector_store()  # hand the embedded store over to the worker
    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = worker_env(
        database_url=database_url,
        broker_url=celery_over_redis,
        media_root=media_root,
        vector_store_path=vector_store_path,
        models_dir=exported_bootstrap.path.parent.parent,
    )
    process = WorkerProcess(env, tmp_path / "worker.log", celery_over_redis)
    yield process
    process.kill()
    runtime.reset_vector_store()


def _queued(broker_url: str) -> int:
    client = redis.Redis.from_url(broker_url)
    return sum(client.llen(q) for q in QUEUES)


def test_worker_indexes_what_waited_in_redis_and_applies_changes(worker, active_model, media_root) -> None:
    # Uploads while no worker runs: saved as pending, their tasks wait in Redis.
    products = {}
    for sku, colour, price in [
        ("A", (200, 20, 20), "5"),
        ("B", (20, 200, 20), "10"),
        ("C", (20, 20, 200), "20"),
    ]:
        products[sku] = services.product_create(sku=sku, title=sku, category="cat", price=price)
        services.product_image_add(product=products[sku], data=image_bytes(color=colour, pattern=ord(sku)))
    extra = services.product_image_add(
        product=products["A"], data=image_bytes(color=(190, 30, 30), pattern=99)
    ).image
    assert _queued(worker.broker_url) == 4
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.PENDING}

    worker.start()
    wait_until(
        lambda: not ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).exists(),
        timeout=120,
        what="every image indexed",
        on_fail=worker.log_tail,
    )
    assert set(ProductImage.objects.values_list("indexed_model_version", flat=True)) == {
        str(active_model.version)
    }

    # A delete and a price change travel the same way.
    extra_id = str(extra.pk)
    services.product_image_delete(image=extra)
    services.product_update(product=products["B"], price="12.50")
    worker.wait_idle()
    worker.stop()
    assert not worker.alive()

    store = runtime.vector_store()
    ids = sorted(str(pk) for pk in ProductImage.objects.values_list("pk", flat=True))
    assert store.count(active_model.collection) == 3
    stored = store.retrieve(active_model.collection, ids)
    assert sorted(stored) == ids
    by_sku = {payload["sku"]: payload for _, payload in stored.values()}
    assert by_sku["B"]["price"] == 12.5
    assert by_sku["A"]["price"] == 5.0 and by_sku["A"]["product_id"] == products["A"].pk
    assert {p["model_version"] for p in by_sku.values()} == {str(active_model.version)}
    assert store.retrieve(active_model.collection, [extra_id]) == {}
