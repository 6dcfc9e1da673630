"""The production path: a push over the API queues ``lookalike.sync_run`` on the ``sync`` queue in the
machine's Redis, and a real ``celery worker`` process reads the feed, fetches its images (from a
loopback server this test starts), indexes them and records the run."""

from __future__ import annotations

import pytest
import redis
from django.db import connection

from catalog.models import IndexStatus, ProductImage, SyncRun
from search import vector_store as store_handle
from tests.catalog.sync.conftest import Shop
from tests.support.celery_worker import WorkerProcess, wait_until, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_push_is_synced_by_a_worker(
    auth_client,
    celery_over_redis,
    active_model,
    exported_bootstrap,
    media_root,
    vector_store_path,
    tmp_path,
    shop: Shop,
) -> None:
    lines = [
        f'{{"sku": "S{n}", "title": "Item {n}", "price": "{n}.50 EUR", "images": ["{shop.picture(f"/cdn/{n}.jpg")}"]}}'
        for n in range(3)
    ]
    response = auth_client.generic(
        "POST",
        "/api/v1/catalog/sync/",
        ("\n".join(lines) + "\n").encode(),
        content_type="application/x-ndjson",
    )
    assert response.status_code == 202
    run_id = response.json()["id"]
    client = redis.Redis.from_url(celery_over_redis)
    assert client.llen("sync") == 1  # routed to the sync queue, nothing ran in the request
    assert SyncRun.objects.get().state == "queued"

    store_handle.reset_vector_store()  # the worker owns the embedded store from here on
    db = connection.settings_dict
    env = worker_env(
        database_url=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        broker_url=celery_over_redis,
        media_root=media_root,
        vector_store_path=vector_store_path,
        models_dir=exported_bootstrap.path.parent.parent,
        extra={
            "IMAGE_FETCH_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
            "IMAGE_FETCH_ALLOWED_HOSTS": "127.0.0.1",
        },
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", celery_over_redis)
    worker.start()
    try:
        wait_until(
            lambda: (
                SyncRun.objects.get(pk=run_id).state == "done"
                and ProductImage.objects.filter(index_status=IndexStatus.INDEXED).count() == 3
            ),
            timeout=180,
            what="the pushed run synced and its images indexed by the worker",
            on_fail=worker.log_tail,
        )
    finally:
        worker.kill()
    run = auth_client.get(f"/api/v1/catalog/sync/{run_id}/").json()
    assert (run["counts"]["products_created"], run["counts"]["images_fetched"], run["counts"]["errors"]) == (
        3,
        3,
        0,
    )
    assert shop.image_requests() == 3
