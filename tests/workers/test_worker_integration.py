"""The indexing pipeline with the machine's real Redis and a real `celery worker` process."""

from __future__ import annotations

import json
import re

import pytest
import redis
from django.db import connection

from catalog import services
from catalog.models import IndexStatus, ProductImage
from config.celery import app
from search import vector_store as store_handle
from search.services.text_index import TEXT_COLLECTION, point_id
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import QUEUES, WorkerProcess, wait_until, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def make_worker(celery_over_redis, active_model, exported_bootstrap, media_root, vector_store_path, tmp_path):
    """``make_worker(queues)``: a worker process over the test's Redis, not started yet; ``queues=None``
    passes no ``-Q``, as Celery's docs (and a new user) do. Killed at teardown."""
    made = []

    def make(queues: tuple[str, ...] | None = QUEUES, extra: dict[str, str] | None = None) -> WorkerProcess:
        store_handle.reset_vector_store()  # hand the embedded store over to the worker
        db = connection.settings_dict
        database_url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = worker_env(
            database_url=database_url,
            broker_url=celery_over_redis,
            media_root=media_root,
            vector_store_path=vector_store_path,
            models_dir=exported_bootstrap.path.parent.parent,
            extra=extra,
        )
        made.append(WorkerProcess(env, tmp_path / "worker.log", celery_over_redis, queues=queues))
        return made[-1]

    yield make
    for process in made:
        process.kill()
    store_handle.reset_vector_store()


def _start_and_wait_until_all_indexed(worker: WorkerProcess, what: str) -> None:
    worker.start()
    wait_until(
        lambda: not ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).exists(),
        timeout=120,
        what=what,
        on_fail=worker.log_tail,
    )


def test_a_plain_worker_indexes_an_import_that_waited(make_worker, media_root, tmp_path) -> None:
    # An import while no worker runs: every image saved as pending, its tasks routed to the index queue.
    from catalog.services.sync import sync_run_create, sync_run_execute

    manifest = tmp_path / "catalog.jsonl"
    rows = []
    for n, colour in enumerate([(200, 20, 20), (20, 200, 20), (20, 20, 200)]):
        name = f"p{n}.jpg"
        (tmp_path / name).write_bytes(image_bytes(color=colour, pattern=n + 1))
        rows.append(json.dumps({"sku": f"P{n}", "title": f"p{n}", "images": [name]}))
    manifest.write_text("\n".join(rows) + "\n")
    run = sync_run_execute(sync_run_create(location=str(manifest), origin="command"))
    assert run.images_added == 3 and not run.error_count
    plain_worker = make_worker(queues=None)
    client = redis.Redis.from_url(plain_worker.broker_url)
    # One task for the batch's three images, routed to the index queue, which a plain worker used to ignore.
    assert client.llen("index") == 1
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.PENDING}

    _start_and_wait_until_all_indexed(plain_worker, "every imported image indexed by a worker without -Q")
    assert client.llen("index") == 0


def _queued(broker_url: str) -> int:
    client = redis.Redis.from_url(broker_url)
    return sum(client.llen(q) for q in QUEUES)


def test_worker_indexes_what_waited_in_redis_and_applies_changes(
    make_worker, active_model, media_root
) -> None:
    worker = make_worker()
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
    # One indexing task per upload and nothing else: the text index hears from the index runs.
    assert redis.Redis.from_url(worker.broker_url).llen("index") == 4
    assert _queued(worker.broker_url) == 4
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.PENDING}

    _start_and_wait_until_all_indexed(worker, "every image indexed")
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

    store = store_handle.vector_store()
    ids = sorted(str(pk) for pk in ProductImage.objects.values_list("pk", flat=True))
    assert store.count(active_model.collection) == 3
    stored = store.retrieve(active_model.collection, ids)
    assert sorted(stored) == ids
    by_sku = {payload["sku"]: payload for _, payload in stored.values()}
    assert by_sku["B"]["price"] == 12.5
    assert by_sku["A"]["price"] == 5.0 and by_sku["A"]["product_id"] == products["A"].pk
    assert {p["model_version"] for p in by_sku.values()} == {str(active_model.version)}
    assert store.retrieve(active_model.collection, [extra_id]) == {}
    # Every product entered the text index through the worker's index runs.
    text_points = [point_id(p.pk) for p in products.values()]
    assert sorted(store.retrieve(TEXT_COLLECTION, text_points)) == sorted(text_points)


def test_in_thread_worker_keeps_search_in_step(celery_over_redis, active_model, api_client) -> None:
    """The same flow in one process: Celery's in-thread test worker consumes from Redis while this
    process serves searches from the store it owns."""
    from celery.contrib.testing.worker import start_worker
    from django.core.files.uploadedfile import SimpleUploadedFile

    def search(**params) -> list[str]:
        fmt = "multipart" if "image" in params else "json"
        response = api_client.post("/api/v1/search/", params, format=fmt)
        assert response.status_code == 200, response.content
        return [r["product"]["sku"] for r in response.json()["results"]]

    photo = image_bytes(color=(240, 120, 10), size=(64, 64), pattern=77)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=list(QUEUES), shutdown_timeout=30):
        lamp = services.product_create(sku="LAMP", title="Orange lamp", price="30")
        image = services.product_image_add(product=lamp, data=photo).image
        other = services.product_create(sku="CUP", title="Cup", price="3")
        services.product_image_add(product=other, data=image_bytes(color=(10, 10, 240), pattern=5))
        wait_until(
            lambda: not ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).exists(),
            60,
            "in-thread indexing",
        )
        assert search(image=SimpleUploadedFile("q.jpg", photo))[0] == "LAMP"

        services.product_update(product=lamp, price="80")
        wait_until(
            lambda: search(image=SimpleUploadedFile("q.jpg", photo), min_price="50") == ["LAMP"],
            30,
            "the new price in the index",
        )

        services.product_image_delete(image=image)
        wait_until(
            lambda: "LAMP" not in search(image=SimpleUploadedFile("q.jpg", photo)),
            30,
            "the deleted image gone from the index",
        )


def test_a_worker_reads_the_text_of_an_upload_from_the_text_queue(make_worker, media_root, settings) -> None:
    from search.models import ImageText
    from tests.fixtures.text_images import text_jpeg

    settings.OCR_ENABLED = True
    worker = make_worker()
    product = services.product_create(sku="T", title="t")
    image = services.product_image_add(product=product, data=text_jpeg(["RYE BREAD 500 g"])).image
    client = redis.Redis.from_url(worker.broker_url)
    assert client.llen("text") == 1  # queued beside indexing, not read in this (the uploading) process
    assert not ImageText.objects.exists()
    worker.start()
    wait_until(
        lambda: ImageText.objects.filter(image=image).exists(),
        timeout=120,
        what="the upload's text read by the worker",
        on_fail=worker.log_tail,
    )
    assert {"rye", "bread", "500g"} <= set(ImageText.objects.get(image=image).tokens)
    assert client.llen("text") == 0


def test_a_burst_of_uploads_shares_one_queued_task(make_worker, broker_url, settings) -> None:
    # With a cache the worker shares (Redis), an upload publishes nothing while a task for uploads is
    # queued: that task takes it along (workers/upload_batching.py).
    from tests.support.model_fixtures import shared_redis_cache

    worker = make_worker(extra={"CACHE_URL": shared_redis_cache(settings, broker_url)})
    product = services.product_create(sku="BURST", title="Burst", price="5")
    for n in range(6):
        services.product_image_add(product=product, data=image_bytes(color=(30 * n, 90, 200), pattern=n + 1))
    assert redis.Redis.from_url(worker.broker_url).llen("index") == 1  # one message for six uploads

    _start_and_wait_until_all_indexed(worker, "the burst indexed by its one task")
    # The task cleared its mark as it started: a later upload publishes a task of its own.
    services.product_image_add(product=product, data=image_bytes(color=(250, 250, 10), pattern=40))
    wait_until(
        lambda: not ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).exists(),
        timeout=60,
        what="the later upload indexed",
        on_fail=worker.log_tail,
    )
    worker.wait_idle()
    log = worker.log_path.read_text(errors="replace")
    ran = len(re.findall(r"Task lookalike\.index_images\[[^\]]+\] succeeded", log))
    assert ran == 2, worker.log_tail()  # seven uploads, two tasks
