"""Fault injection against the real pipeline: worker crashes, a broker that restarts empty, a model
server or vector store that goes away, and a rolled-back write. Each test ends by showing the
platform healed itself (sweeper, reconnects) with nothing lost, duplicated or orphaned."""

from __future__ import annotations

import random
import time

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from catalog import services
from catalog.models import IndexStatus, Product, ProductImage
from search import vector_store as store_handle
from search.embedders import reset_embedders
from search.services.reconcile import reconcile
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import QUEUES, WorkerProcess, wait_until
from workers.tasks import sweep_index

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KILL_CYCLES = 20
SEED = 20_240_611


class Uploader:
    """Distinct generated images spread over a few products, added through the catalog service."""

    def __init__(self, products: int = 4) -> None:
        self.products = [
            services.product_create(sku=f"P{i}", title=f"Product {i}", category="c", price=str(5 + i))
            for i in range(products)
        ]
        self.count = 0

    def add(self, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            k = self.count
            # (13 * k) mod 256 is a bijection, so every image differs in colour as well as pattern.
            colour = ((13 * k) % 256, (91 * k + 40) % 256, (37 * k + 90) % 256)
            result = services.product_image_add(
                product=self.products[k % len(self.products)],
                data=image_bytes(color=colour, size=(48, 40), pattern=1000 + k),
            )
            assert result.created, "generated images must be distinct"
            ids.append(str(result.image.pk))
            self.count += 1
        return ids


def _indexed() -> int:
    return ProductImage.objects.filter(index_status=IndexStatus.INDEXED).count()


def _not_indexed() -> int:
    return ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).count()


def _sweep_until_indexed(worker: WorkerProcess | None, timeout: float) -> int:
    """Act as beat: run the sweeper every couple of seconds until nothing is left unindexed.

    With a worker, ``delay()`` sends the sweep to it; without one (eager settings) ``apply()`` runs it
    here. Returns how many sweeps it took."""
    sweeps = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _not_indexed() == 0:
            return sweeps
        if worker is not None:
            assert worker.alive(), f"worker died:\n{worker.log_tail()}"
            sweep_index.delay()
        else:
            sweep_index.apply()
        sweeps += 1
        # The sweeper only takes images pending > INDEX_PENDING_GRACE_S (1 s) whose backoff
        # (1 s, 2 s, 4 s... per attempt) has passed, so polling faster would only wait.
        end = time.monotonic() + 2.0
        while time.monotonic() < end and _not_indexed():
            time.sleep(0.2)
    left = list(
        ProductImage.objects.exclude(index_status=IndexStatus.INDEXED).values_list(
            "pk", "index_status", "index_attempts", "last_error"
        )[:10]
    )
    tail = worker.log_tail() if worker is not None else ""
    raise AssertionError(f"sweeper did not index everything in {timeout} s; left: {left}\n{tail}")


def _assert_store_matches_db(collection: str, version: int) -> None:
    """The store holds exactly one point per image row: none missing, no orphans, no duplicates."""
    store_handle.reset_vector_store()  # reopen: read what the worker left on disk, not a cached view
    store = store_handle.vector_store()
    db_ids = {str(pk) for pk in ProductImage.objects.values_list("pk", flat=True)}
    assert db_ids, "the test indexed nothing"
    assert _not_indexed() == 0
    assert not ProductImage.objects.filter(index_status=IndexStatus.FAILED).exists()
    scrolled = list(store.scroll_ids(collection))
    point_ids = [point_id for point_id, _ in scrolled]
    assert len(point_ids) == len(set(point_ids)), "a point id appears twice"
    assert sorted(db_ids - set(point_ids)) == [], "indexed rows without a point"
    assert sorted(set(point_ids) - db_ids) == [], "points without a row (orphans)"
    assert store.count(collection) == len(db_ids) == _indexed()
    product_of = {
        str(pk): product_id for pk, product_id in ProductImage.objects.values_list("pk", "product_id")
    }
    for point_id, payload in scrolled:
        assert payload["model_version"] == str(version)
        assert payload["product_id"] == product_of[point_id]


def _unacked(client: redis.Redis) -> int:
    return client.hlen("unacked")


def _ready_at(worker: WorkerProcess, offset: int, started: float, timeout: float = 60) -> float:
    """Seconds from Popen until this run of the worker logged 'ready.' (its log is appended per run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ready." in worker.log_path.read_text(errors="replace")[offset:]:
            return time.monotonic() - started
        assert worker.alive(), worker.log_tail()
        time.sleep(0.05)
    raise AssertionError(f"worker not ready in {timeout} s:\n{worker.log_tail()}")


# --- 1. SIGKILL mid-batch, many times, while uploads continue ------------------------------------


def _poll(predicate, timeout: float, alive: WorkerProcess, interval: float = 0.002) -> bool:
    """Poll fast: once the model is loaded a task takes ~5-40 ms here, so the 0.25 s of wait_until
    would only ever see a drained backlog. False on timeout; fails at once if the worker died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        assert alive.alive(), f"worker died on its own:\n{alive.log_tail()}"
        time.sleep(interval)
    return False


def _queued(client: redis.Redis) -> int:
    return sum(client.llen(q) for q in QUEUES)


def test_worker_sigkilled_mid_indexing_loses_and_duplicates_nothing(
    celery_over_redis: str, active_model, make_worker
) -> None:
    rng = random.Random(SEED)
    broker = redis.Redis.from_url(celery_over_redis)
    uploads = Uploader()
    uploads.add(6)  # a backlog waiting in Redis before the first worker starts
    worker = make_worker(celery_over_redis)
    ready_s, first_index_s = [], []
    in_hand = mid_batch = 0
    for cycle in range(KILL_CYCLES):
        before, unacked_before = _indexed(), _unacked(broker)
        offset = worker.log_path.stat().st_size if worker.log_path.exists() else 0
        started = time.monotonic()
        worker.start()
        uploads.add(rng.randint(3, 5))  # uploads keep arriving while the worker boots and consumes
        ready_s.append(_ready_at(worker, offset, started))
        if cycle % 2 == 0:
            # Early kill, 2-4 s after start: the first task is in hand while the worker imports
            # TensorFlow and loads the model (~7 s here), so its message is stranded in "unacked".
            end = started + rng.uniform(2.0, 4.0)
            while time.monotonic() < end:
                assert worker.alive(), f"worker died on its own in cycle {cycle}:\n{worker.log_tail()}"
                time.sleep(0.05)
        else:
            # Kill while batches run: a task takes every pending image along (up to 64), so once the
            # first batch lands, more uploads arrive and the kill falls 0-100 ms later, inside the
            # batch a leftover message picks them up with, or between two messages.
            assert _poll(lambda b=before: _indexed() > b, 60, worker), f"no progress in cycle {cycle}"
            first_index_s.append(time.monotonic() - started)
            uploads.add(2)
            time.sleep(rng.uniform(0.0, 0.1))  # where the kill lands, not an assertion
        assert worker.alive(), f"worker died on its own in cycle {cycle}:\n{worker.log_tail()}"
        in_hand += _unacked(broker) > unacked_before  # a delivered task not yet acked
        worker.kill()
        mid_batch += before < _indexed() and _not_indexed() > 0  # some of the backlog done, some not
    uploads.add(4)  # and some after the last crash

    # Tasks in hand at a kill stay in "unacked" until Redis's visibility timeout (an hour), so
    # only the sweeper can bring those images in.
    stranded = _not_indexed()
    assert stranded > 0
    final = make_worker(celery_over_redis)
    final.start()
    sweeps = _sweep_until_indexed(final, timeout=120)
    final.stop()
    assert not final.alive()

    _assert_store_matches_db(active_model.collection, active_model.version)
    assert ProductImage.objects.count() == uploads.count
    # reconcile_index's own view agrees, payloads included: the crashes left nothing for it to repair.
    report = reconcile(dry_run=True)[0]
    assert (report.points, report.missing, report.orphans, report.stale_payloads) == (uploads.count, 0, 0, 0)
    ready_s.sort()
    first_index_s.sort()
    print(
        f"\n[faults] {KILL_CYCLES} SIGKILLs: {in_hand} with a task in hand, {mid_batch} mid-batch; "
        f"{uploads.count} images, {stranded} unindexed after the last kill, healed by {sweeps} sweep(s). "
        f"Worker start-up (min/median/max): 'ready.' {ready_s[0]:.1f}/{ready_s[len(ready_s) // 2]:.1f}/"
        f"{ready_s[-1]:.1f} s, first image indexed {first_index_s[0]:.1f}/"
        f"{first_index_s[len(first_index_s) // 2]:.1f}/{first_index_s[-1]:.1f} s"
    )
    # Without this the loop proved nothing about crashes inside a task.
    assert in_hand >= KILL_CYCLES // 4


# --- 2. The broker restarts empty while the worker indexes ----------------------------------------


def test_broker_restart_mid_indexing_loses_no_image(
    over_own_redis, active_model, make_worker, auth_client
) -> None:
    own_redis = over_own_redis
    uploads = Uploader()
    first = uploads.add(20)
    worker = make_worker(own_redis.url)
    worker.start()
    # The worker has taken its first message (a batch of every pending image, and seconds of model
    # loading): Redis dies with that task in hand and the other 19 messages queued. "In hand" is the
    # solo pool's "received" line, after which it runs the task before it reads the connection again;
    # a message merely fetched from the queue (fewer queued) is dropped with the connection, and the
    # restarted, empty Redis could not give it back.
    assert _poll(lambda: _queued(own_redis.client()) < 20, 60, worker), "the worker never consumed"
    assert _poll(lambda: "lookalike.index_images[" in worker.log_tail(200), 60, worker), "no task in hand"
    own_redis.kill()
    # Uploads during the outage: rows and files commit, only the enqueue after commit fails. The API
    # must still answer 201 (the image is saved; the sweeper indexes it), not 500 for a saved image.
    response = _upload(auth_client, uploads.products[0], 77)
    assert response.status_code == 201, response.content
    during_outage = [response.json()["id"], *uploads.add(2)]
    # The batch in hand finishes without a broker (it only needs the database and the store).
    wait_until(
        lambda: ProductImage.objects.filter(pk__in=first, index_status=IndexStatus.INDEXED).count() == 20,
        timeout=60,
        what="the batch in hand",
        on_fail=worker.log_tail,
    )
    own_redis.start()  # same port, empty: the queued messages are gone
    assert _queued(own_redis.client()) == 0
    # The outage uploads' tasks never reached a broker. The task in hand pulls other pending uploads
    # along for up to a minute (search/services/indexing.py::index_with_pending), so it may index
    # them itself; whatever it left is the sweeper's, below.
    left = ProductImage.objects.filter(pk__in=during_outage, index_status=IndexStatus.PENDING).count()

    # The sweep travels through the restarted Redis to the same worker process: it reconnected.
    sweeps = _sweep_until_indexed(worker, timeout=90)
    late = uploads.add(3)  # and the fast path works again after the restart
    wait_until(
        lambda: ProductImage.objects.filter(pk__in=late, index_status=IndexStatus.INDEXED).count() == 3,
        timeout=60,
        what="new uploads indexed after the restart",
        on_fail=worker.log_tail,
    )
    assert worker.alive()
    print(
        f"\n[faults] broker restart: 19 queued messages lost; of 3 outage uploads, {3 - left} pulled along by "
        f"the task in hand, {left} healed by {sweeps} sweep(s)"
    )
    worker.stop()
    _assert_store_matches_db(active_model.collection, active_model.version)
    assert ProductImage.objects.count() == uploads.count + 1 == 26


# --- 3. The model server or the vector store is unavailable ---------------------------------------


def _upload(client, product: Product, k: int):
    photo = SimpleUploadedFile(f"p{k}.jpg", image_bytes(color=(20 * k % 256, 90, 160), pattern=500 + k))
    return client.post(f"/api/v1/products/{product.pk}/images/", {"image": photo}, format="multipart")


def _search(client, k: int = 0):
    photo = SimpleUploadedFile("q.jpg", image_bytes(color=(20 * k % 256, 90, 160), pattern=500 + k))
    return client.post("/api/v1/search/", {"image": photo}, format="multipart")


def _outage_answers(auth_client, code: str, check: str) -> list[str]:
    """During an outage uploads are accepted and kept pending; search and readiness say what is down."""
    product = services.product_create(sku=f"OUT-{code}", title="Outage", price="9")
    ids = []
    for k in range(3):
        response = _upload(auth_client, product, k)
        assert response.status_code == 201, response.content
        assert response.json()["index_status"] == IndexStatus.PENDING
        ids.append(response.json()["id"])
    images = ProductImage.objects.filter(pk__in=ids)
    assert {i.index_status for i in images} == {IndexStatus.PENDING}
    assert all(i.index_attempts == 1 and i.last_error for i in images)  # the eager task recorded why

    search = _search(auth_client)
    assert search.status_code == 503 and search.json()["error"]["code"] == code, search.content
    ready = auth_client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and body["checks"][check].startswith("down:"), body
    assert all(v == "ok" for k, v in body["checks"].items() if k not in {check, "broker"}), body
    return ids


def _healed(auth_client, ids: list[str], collection: str) -> None:
    sweeps = _sweep_until_indexed(None, timeout=60)  # no human acts: only the sweeper
    assert sweeps >= 1
    assert ProductImage.objects.filter(pk__in=ids, index_status=IndexStatus.INDEXED).count() == len(ids)
    search = _search(auth_client)
    assert search.status_code == 200, search.content
    assert search.json()["results"][0]["product"]["sku"].startswith("OUT-")
    assert auth_client.get("/readyz").status_code == 200
    assert store_handle.vector_store().count(collection) == ProductImage.objects.count()


@pytest.fixture
def stub_models_dir(exported_bootstrap):
    return exported_bootstrap.path.parent.parent


@pytest.fixture
def grace_1s(settings) -> None:
    # Backoff is INDEX_PENDING_GRACE_S * 2**(attempts-1): 1 s, 2 s, 4 s... heals in seconds.
    settings.INDEX_PENDING_GRACE_S = 1


def test_model_server_down_uploads_pend_and_the_sweeper_heals(
    active_model, auth_client, settings, stub_models_dir, grace_1s
) -> None:
    from tests.support.tf_serving_stub import spawn_stub

    stub = spawn_stub(stub_models_dir)
    settings.TF_SERVING_TARGET = stub.target
    settings.TF_SERVING_TIMEOUT_S = 1.0
    store_handle.reset_vector_store()
    reset_embedders()
    try:
        first = _upload(auth_client, services.product_create(sku="UP", title="up"), 99)
        assert first.status_code == 201, first.content
        # The body shows the row as the upload saw it; the eager task ran after, through the stub.
        assert ProductImage.objects.get(pk=first.json()["id"]).index_status == IndexStatus.INDEXED
        stub.kill()
        ids = _outage_answers(auth_client, "model_unavailable", "model")
        stub = spawn_stub(stub_models_dir, port=stub.port)  # the same address, as a restart would
        _healed(auth_client, ids, active_model.collection)
    finally:
        stub.kill()
        settings.TF_SERVING_TARGET = None
        store_handle.reset_vector_store()
        reset_embedders()


def test_vector_store_down_uploads_pend_and_the_sweeper_heals(
    active_model, auth_client, settings, grace_1s
) -> None:
    from tests.support.serving_fixtures import free_port

    settings.QDRANT_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store_handle.reset_vector_store()
    try:
        ids = _outage_answers(auth_client, "index_unavailable", "vector_store")
    finally:
        settings.QDRANT_URL = None
        store_handle.reset_vector_store()
    _healed(auth_client, ids, active_model.collection)


# --- 4. A rolled-back write enqueues nothing and leaves nothing -----------------------------------


def test_rolled_back_upload_enqueues_nothing(celery_over_redis: str, media_root, vector_store_path) -> None:
    import os

    from search.jobs.records import job_submit
    from search.jobs.runner import job_run

    broker = redis.Redis.from_url(celery_over_redis)

    class CallerFailed(RuntimeError):
        pass

    with pytest.raises(CallerFailed), transaction.atomic():
        product = services.product_create(sku="RB", title="rolled back")
        image = services.product_image_add(product=product, data=image_bytes(pattern=4242)).image
        raise CallerFailed("the caller's transaction fails after the upload")
    assert sum(broker.llen(q) for q in QUEUES) == 0 and broker.hlen("unacked") == 0
    assert not Product.objects.exists() and not ProductImage.objects.exists()

    # Django has no on-rollback hook, so the content-addressed file outlives the rolled-back row (a
    # known, documented gap); the reconcile pass removes it once it is older than an upload in flight.
    path = media_root / image.file.name
    assert path.exists()
    old = time.time() - 7200
    os.utime(path, (old, old))
    # With a broker, `manage.py reconcile_index` hands this job to a worker; run it here as one would.
    job_run(job_submit(kind="reconcile", claim=True))
    assert [p for p in media_root.rglob("*") if p.is_file()] == []

    # Control: the same calls committed do reach the queue, so the empty queue above means something.
    product = services.product_create(sku="OK", title="committed")
    services.product_image_add(product=product, data=image_bytes(pattern=4243))
    assert sum(broker.llen(q) for q in QUEUES) == 1  # indexing (the text index follows from its run)
