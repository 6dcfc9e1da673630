"""`POST /api/v1/products/<id>/images/?wait=N`: the answer comes once the image is indexed (or failed),
or after N seconds at most, with its index status as it then is. Run with the embedded default (tasks
in-process), with a broker nobody consumes, and with the machine's Redis and a real worker."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search import vector_store as store_handle
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import WorkerProcess, wait_until, worker_env

pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client, product_id: int, data: bytes, wait: str | None = None):
    url = f"/api/v1/products/{product_id}/images/" + (f"?wait={wait}" if wait is not None else "")
    photo = SimpleUploadedFile("p.jpg", data, content_type="image/jpeg")
    start = time.monotonic()
    response = client.post(url, {"image": photo}, format="multipart")
    return response, time.monotonic() - start


@pytest.mark.parametrize("wait", ["6", "5.5", "-1", "soon", "nan", "inf"])
def test_wait_is_validated_before_anything_is_written(auth_client, media_root, wait) -> None:
    product = services.product_create(sku="W-0", title="Waits")
    response, _ = _upload(auth_client, product.pk, image_bytes(pattern=1), wait)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter" and "wait" in error["fields"]
    assert not ProductImage.objects.exists()


def test_embedded_default_answers_indexed(auth_client, active_model) -> None:
    product = services.product_create(sku="W-1", title="Indexed in-process")
    response, elapsed = _upload(auth_client, product.pk, image_bytes(pattern=2), "5")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["index_status"] == IndexStatus.INDEXED
    assert body["indexed_model_version"] == str(active_model.version)
    assert elapsed < 4, "an image indexed before the first look is answered at once"


def test_the_wait_ends_when_the_time_is_up(auth_client, celery_over_redis, media_root) -> None:
    # A broker, and no worker consuming it: the image stays pending.
    product = services.product_create(sku="W-2", title="Nobody indexes")
    response, elapsed = _upload(auth_client, product.pk, image_bytes(pattern=3), "1")
    assert response.status_code == 201, response.content
    assert response.json()["index_status"] == IndexStatus.PENDING
    assert 1.0 <= elapsed < 3.0, elapsed
    response, elapsed = _upload(auth_client, product.pk, image_bytes(pattern=4))
    assert response.json()["index_status"] == IndexStatus.PENDING and elapsed < 1.0  # no wait asked


@pytest.mark.integration
def test_a_real_worker_indexes_while_the_upload_waits(
    auth_client, celery_over_redis, active_model, exported_bootstrap, media_root, vector_store_path, tmp_path
) -> None:
    store_handle.reset_vector_store()  # the worker owns the embedded store
    db = connection.settings_dict
    env = worker_env(
        database_url=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        broker_url=celery_over_redis,
        media_root=media_root,
        vector_store_path=vector_store_path,
        models_dir=exported_bootstrap.path.parent.parent,
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", celery_over_redis)
    product = services.product_create(sku="W-3", title="Indexed by the worker")
    try:
        worker.start()
        # A first upload tells when the worker is up (it imports TensorFlow and loads the model).
        first, _ = _upload(auth_client, product.pk, image_bytes(pattern=5))
        wait_until(
            lambda: ProductImage.objects.filter(
                pk=first.json()["id"], index_status=IndexStatus.INDEXED
            ).exists(),
            timeout=120,
            what="the worker to index the first upload",
            on_fail=worker.log_tail,
        )
        response, elapsed = _upload(auth_client, product.pk, image_bytes(color=(10, 90, 220), pattern=6), "5")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["index_status"] == IndexStatus.INDEXED, (body, worker.log_tail())
        assert body["indexed_model_version"] == str(active_model.version)
        assert elapsed < 5.0
    finally:
        worker.kill()
        store_handle.reset_vector_store()


def test_the_schema_documents_the_wait(client) -> None:
    schema = client.get("/api/v1/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/products/{product_id}/images/"]["post"]
    (wait,) = [p for p in operation["parameters"] if p["name"] == "wait"]
    assert wait["in"] == "query" and wait["schema"]["maximum"] == 5 and wait["schema"]["minimum"] == 0
