"""What each announcement turns into: the tasks workers/subscribers.py enqueues (eager here, so they
run in-process and are recorded as they start)."""

from __future__ import annotations

import pytest

from catalog import events as catalog_events
from catalog import services
from search import events as search_events
from tests.fixtures.images import image_bytes
from tests.support.recorders import tasks_run

pytestmark = pytest.mark.django_db


def test_product_edits_sync_payloads_only_when_a_payload_field_changed(
    media_root, django_capture_on_commit_callbacks
) -> None:
    product = services.product_create(sku="X", title="x", price="2")
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        services.product_update(product=product, title="renamed", description="longer")
    # Titles are read from the catalog at query time, never from the image points; the text index
    # holds the words, so it is written again.
    assert ran == [("lookalike.sync_product_text", ([product.pk],), {})]
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        services.product_update(product=product, price="3.00")
    assert ran == [
        ("lookalike.sync_product_payload", (product.pk,), {}),
        ("lookalike.sync_product_text", ([product.pk],), {}),
    ]


def test_image_events_enqueue_indexing_and_removal(media_root, django_capture_on_commit_callbacks) -> None:
    product = services.product_create(sku="X", title="x")
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        image = services.product_image_add(product=product, data=image_bytes()).image
    # One task per upload (no model is active here, so nothing is indexed and nothing follows).
    assert ran == [("lookalike.index_images", ([str(image.pk)],), {})]
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        services.product_images_reindex(product_ids=[product.pk])
    assert ran == [("lookalike.index_images", ([str(image.pk)],), {})]
    image_id = str(image.pk)  # delete() clears the instance's pk
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        services.product_image_delete(image=image)
    assert ran == [("lookalike.remove_image_points", ([image_id],), {})]


def test_an_index_run_sends_its_images_to_the_text_index_in_one_task(
    active_model, media_root, django_capture_on_commit_callbacks
) -> None:
    from search.services.text_index import TEXT_COLLECTION, point_id
    from search.vector_store import vector_store
    from workers import tasks

    product = services.product_create(sku="X", title="x")
    with django_capture_on_commit_callbacks(execute=False):  # added, their own tasks not run
        added = [services.product_image_add(product=product, data=image_bytes(pattern=n)) for n in (1, 2)]
    ids = [str(a.image.pk) for a in added]
    with tasks_run() as ran:
        tasks.index_images.delay(ids)
    assert [name for name, _, _ in ran] == ["lookalike.index_images", "lookalike.sync_images_text"]
    assert sorted(ran[1][1][0]) == sorted(ids)
    assert point_id(product.pk) in vector_store().retrieve(TEXT_COLLECTION, [point_id(product.pk)])


def test_search_announcements_become_tasks(django_capture_on_commit_callbacks) -> None:
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        search_events.announce(search_events.index_requested, image_ids=["a", "b"])
    assert ran == [("lookalike.index_images", (["a", "b"],), {})]


def test_a_submitted_job_becomes_a_task_only_with_a_broker(
    settings, django_capture_on_commit_callbacks
) -> None:
    # With no broker the task would run right here, inside the request that submitted the job; the
    # store owner's runner thread polls for it instead (workers/embedded.py).
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        search_events.announce(search_events.job_submitted, job_id=123)
    assert ran == []
    published = []
    from workers import tasks

    settings.CELERY_TASK_ALWAYS_EAGER = False
    original = tasks.run_job.delay
    tasks.run_job.delay = lambda job_id: published.append(job_id)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            search_events.announce(search_events.job_submitted, job_id=123)
    finally:
        tasks.run_job.delay = original
    assert published == [123]


def test_an_empty_announcement_enqueues_nothing(django_capture_on_commit_callbacks) -> None:
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        catalog_events.announce(catalog_events.images_added, image_ids=[])
        catalog_events.announce(catalog_events.images_removed, image_ids=[])
    assert ran == []


def test_a_failing_listener_does_not_fail_the_committed_write(
    media_root, django_capture_on_commit_callbacks, caplog
) -> None:
    def broken(sender, **payload):
        raise ConnectionError("broker down")

    catalog_events.images_added.connect(broken, weak=False)
    try:
        product = services.product_create(sku="X", title="x")
        with django_capture_on_commit_callbacks(execute=True):
            result = services.product_image_add(product=product, data=image_bytes())
    finally:
        catalog_events.images_added.disconnect(broken)
    assert result.created and result.image.pk is not None
    assert "broker down" in caplog.text


def test_added_images_are_sent_to_the_text_queue_with_a_broker(
    settings, django_capture_on_commit_callbacks
) -> None:
    from workers import tasks
    from workers.queues import TASK_ROUTES, Queue

    assert TASK_ROUTES["lookalike.read_image_text"] == {"queue": Queue.TEXT.value}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    published: list[list[str]] = []
    original_index, original_text = tasks.index_images.delay, tasks.read_image_text.delay
    tasks.index_images.delay = lambda ids: None
    tasks.read_image_text.delay = published.append
    try:
        settings.OCR_ENABLED = False
        with django_capture_on_commit_callbacks(execute=True):
            catalog_events.announce(catalog_events.images_added, image_ids=["a"])
        assert published == []
        settings.OCR_ENABLED = True
        with django_capture_on_commit_callbacks(execute=True):
            catalog_events.announce(catalog_events.images_added, image_ids=["a", "b"])
            catalog_events.announce(catalog_events.images_reindex_requested, image_ids=["c"])
    finally:
        tasks.index_images.delay, tasks.read_image_text.delay = original_index, original_text
    assert published == [["a", "b"], ["c"]]


def test_without_a_broker_text_is_read_on_the_reader_thread_not_in_the_request(
    settings, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    from workers import embedded

    submitted: list[list[str]] = []
    monkeypatch.setattr(embedded, "submit_text_reading", submitted.append)
    settings.OCR_ENABLED = True
    with tasks_run() as ran, django_capture_on_commit_callbacks(execute=True):
        catalog_events.announce(catalog_events.images_added, image_ids=["a"])
    assert submitted == [["a"]]
    assert ("lookalike.read_image_text", (["a"],), {}) not in ran
