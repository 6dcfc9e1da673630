"""The indexing service's three entry points, each with what it writes and what it leaves alone."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from catalog import services
from catalog.models import IndexStatus, ProductImage
from search.services.indexing import fill_collection, index_pending_images, repair_missing
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes
from tests.support.reindex import reindex_start

pytestmark = pytest.mark.django_db


def _pending_images(n: int, sku: str = "P") -> list[ProductImage]:
    product = services.product_create(sku=sku, title=sku)
    # announce=False: the images stay pending, as when no worker has run yet.
    return [
        services.product_image_add(product=product, data=image_bytes(pattern=i + 1)).image for i in range(n)
    ]


def test_live_path_marks_rows_and_skips_what_the_active_model_indexed(active_model, media_root) -> None:
    images = _pending_images(2)
    ids = [str(i.pk) for i in images]
    outcome = index_pending_images([*ids, "00000000-0000-0000-0000-000000000000"])
    assert sorted(outcome.indexed) == sorted(ids)
    assert outcome.missing == ["00000000-0000-0000-0000-000000000000"]
    rows = ProductImage.objects.filter(pk__in=ids)
    assert {(r.index_status, r.indexed_model_version) for r in rows} == {
        (IndexStatus.INDEXED, str(active_model.version))
    }
    assert vector_store().count(active_model.collection) == 2
    again = index_pending_images(ids)  # a redelivered task: nothing to do
    assert again.indexed == [] and again.failed == {}


def test_live_path_writes_every_collection_that_takes_writes(active_model, candidate, media_root) -> None:
    reindex_start(candidate)  # the candidate's collection is being filled
    (image,) = _pending_images(1)
    index_pending_images([str(image.pk)])
    store = vector_store()
    assert store.retrieve(active_model.collection, [str(image.pk)])
    assert store.retrieve(candidate.collection, [str(image.pk)])
    image.refresh_from_db()
    assert image.indexed_model_version == str(active_model.version)  # rows follow the serving model


def test_a_bad_image_is_marked_failed_with_a_backoff_and_the_batch_goes_on(active_model, media_root) -> None:
    good, bad = _pending_images(2)
    default_storage.delete(bad.file.name)
    outcome = index_pending_images([str(good.pk), str(bad.pk)])
    assert outcome.indexed == [str(good.pk)]
    bad.refresh_from_db()
    assert bad.index_status == IndexStatus.FAILED and bad.last_error.startswith("missing_file")
    assert bad.index_attempts == 1 and bad.next_attempt_at is not None


def test_filling_a_collection_leaves_the_rows_alone(active_model, candidate, media_root) -> None:
    images = _pending_images(2)
    outcome = fill_collection([str(i.pk) for i in images], candidate)
    assert len(outcome.indexed) == 2
    assert vector_store().count(candidate.collection) == 2
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.PENDING}


def test_repair_marks_rows_only_for_the_serving_model(active_model, candidate, media_root) -> None:
    images = _pending_images(1)
    ids = [str(images[0].pk)]
    repair_missing(ids, candidate)
    assert ProductImage.objects.get(pk=ids[0]).index_status == IndexStatus.PENDING
    repair_missing(ids, active_model)
    assert ProductImage.objects.get(pk=ids[0]).index_status == IndexStatus.INDEXED


def test_no_active_model_is_a_typed_error(db, vector_store_path, media_root) -> None:
    from search.errors import NoActiveModel

    (image,) = _pending_images(1)
    with pytest.raises(NoActiveModel) as info:
        index_pending_images([str(image.pk)])
    assert info.value.code == "model_unavailable"


class _CountingEmbedder:
    """The real embedder, with each model call's batch size written down (a spy, not a mock)."""

    def __init__(self, real) -> None:
        self.real, self.calls = real, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def embed(self, pixels):
        self.calls.append(len(pixels))
        return self.real.embed(pixels)


@pytest.fixture
def counting_embedder(monkeypatch, active_model):
    from search.embedders import embedder_for
    from search.services import indexing

    spy = _CountingEmbedder(embedder_for(active_model))
    monkeypatch.setattr(indexing, "embedder_for", lambda model: spy)
    return spy


def test_a_worker_task_takes_pending_uploads_along_in_batches_and_each_is_indexed_once(
    active_model, media_root, counting_embedder, monkeypatch
) -> None:
    from search.services import indexing

    monkeypatch.setattr(indexing, "BATCH", 4)
    images = _pending_images(10)
    ids = [str(i.pk) for i in images]
    # The first upload's task (the other nine are pending, their own tasks still queued).
    outcome = indexing.index_with_pending([ids[0]])
    assert sorted(outcome.indexed) == sorted(ids)
    assert counting_embedder.calls == [4, 4, 2]  # three model calls for ten uploads
    assert vector_store().count(active_model.collection) == 10
    assert set(ProductImage.objects.filter(pk__in=ids).values_list("index_status", flat=True)) == {
        IndexStatus.INDEXED
    }
    # The other uploads' tasks, delivered after: nothing left to embed.
    for image_id in ids[1:]:
        assert indexing.index_with_pending([image_id]).indexed == []
    assert counting_embedder.calls == [4, 4, 2]


@pytest.mark.parametrize("decode_ahead", [True, False])
def test_a_broken_photo_among_good_ones_fails_alone_and_every_batch_is_written(
    active_model, media_root, monkeypatch, decode_ahead
) -> None:
    from search.services import indexing

    monkeypatch.setattr(indexing, "BATCH", 2)
    monkeypatch.setattr(indexing, "DECODE_AHEAD", decode_ahead)  # on with more than 2 cores
    images = _pending_images(5)
    bad = images[2]
    default_storage.delete(bad.file.name)
    steps = []
    outcome = index_pending_images([str(i.pk) for i in images], on_batch=steps.append)
    good = {str(i.pk) for i in images} - {str(bad.pk)}
    assert set(outcome.indexed) == good and list(outcome.failed) == [str(bad.pk)]
    assert [(len(s.indexed), len(s.failed)) for s in steps] == [(2, 0), (1, 1), (1, 0)]
    bad.refresh_from_db()
    assert bad.index_status == IndexStatus.FAILED and bad.index_attempts == 1
    assert ProductImage.objects.filter(index_status=IndexStatus.INDEXED).count() == 4
    assert vector_store().count(active_model.collection) == 4


def test_a_store_failure_leaves_the_batch_pending_not_half_marked(
    active_model, media_root, monkeypatch
) -> None:
    from search.services import indexing

    images = _pending_images(3)
    store = vector_store()

    def down(*args, **kwargs):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(store, "upsert", down)
    with pytest.raises(ConnectionError):
        indexing.index_pending_images([str(i.pk) for i in images])
    assert set(ProductImage.objects.values_list("index_status", flat=True)) == {IndexStatus.PENDING}


def test_indexing_decodes_stored_photos_under_the_settings_limits(active_model, media_root, settings) -> None:
    """Indexing applies MAX_UPLOAD_BYTES and MAX_IMAGE_PIXELS as uploads do, not ml.preprocess's built-in
    limits: a deployment that raises the settings must not admit photos that indexing then refuses. Here
    the pixel limit is lowered after the upload, so only the settings can make indexing refuse it."""
    (image,) = _pending_images(1)
    settings.MAX_IMAGE_PIXELS = 100
    outcome = index_pending_images([str(image.pk)])
    assert outcome.indexed == []
    image.refresh_from_db()
    assert image.index_status == IndexStatus.FAILED and image.last_error.startswith("too_many_pixels")
