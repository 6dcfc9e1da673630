"""Embedder contract: in-process and TF Serving (gRPC stub) agree; failures map to typed errors in time."""

from __future__ import annotations

import logging
import shutil
import threading
import time

import numpy as np
import pytest

from ml import tflite
from ml.serving import (
    BadEmbedding,
    EmbedderError,
    EmbedderUnavailable,
    InvalidInput,
    LocalEmbedder,
    ModelNotFound,
    TFLiteEmbedder,
    TFServingEmbedder,
    open_local_embedder,
)
from tests.support.serving_fixtures import MODEL_NAME, TINY_DIM, TINY_SIZE, free_port, random_images

# Scheduling slack on a loaded 2-core CI machine, on top of the embedder's own worst case.
SLACK_S = 1.5
# The export's own bar for TFLite against the SavedModel (ml.export.DEFAULT_TFLITE_MIN_COSINE).
MIN_COSINE = 0.9999


def assert_same_directions(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == np.float32
    a, b = got.astype(np.float64), expected.astype(np.float64)
    cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.all(cosines >= MIN_COSINE), cosines.min()


def copy_version(exported, root, *, tflite_bytes: bytes | None = None):
    """A copy of the exported version folder; without model.tflite, or with the given bytes in it."""
    target = root / MODEL_NAME / "1"
    shutil.copytree(exported.path, target)
    (target / "model.tflite").unlink()
    if tflite_bytes is not None:
        (target / "model.tflite").write_bytes(tflite_bytes)
    return target


def test_local_embedder_matches_keras(local_embedder, tiny_keras_model):
    images = random_images(5, seed=1)
    out = local_embedder.embed(images)
    assert out.dtype == np.float32 and out.shape == (5, TINY_DIM)
    assert (local_embedder.image_size, local_embedder.dim) == (TINY_SIZE, TINY_DIM)
    assert local_embedder.ready()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, np.asarray(tiny_keras_model(images.astype("float32"))), atol=1e-5)


def test_local_embedder_batches_and_threads(exported, local_embedder):
    images = random_images(7, seed=2)
    expected = local_embedder.embed(images)
    small = LocalEmbedder(exported.path, max_batch=3)
    np.testing.assert_allclose(small.embed(images), expected, atol=1e-6)
    assert small.embed(images[:0]).shape == (0, TINY_DIM)

    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(small.embed(images))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_local_embedder_missing_model(tmp_path):
    with pytest.raises(ModelNotFound):
        LocalEmbedder(tmp_path / "nope")


@pytest.mark.parametrize("n", [1, 3, 70])  # 70 > max_batch (32): three interpreter runs
def test_tflite_embedder_matches_the_saved_model(tflite_embedder, local_embedder, n):
    images = random_images(n, seed=20 + n)
    assert (tflite_embedder.image_size, tflite_embedder.dim) == (TINY_SIZE, TINY_DIM)
    assert tflite_embedder.ready()
    assert_same_directions(tflite_embedder.embed(images), local_embedder.embed(images))
    assert tflite_embedder.embed(images[:0]).shape == (0, TINY_DIM)


def test_tflite_embedder_reallocates_only_when_the_batch_size_changes(exported):
    embedder = TFLiteEmbedder(exported.path, max_batch=4, pool_size=1)
    first = embedder.embed(random_images(1, seed=1))
    for _ in range(5):
        embedder.embed(random_images(1, seed=2))
    assert embedder.resizes == 0, "the interpreter starts at batch 1: no reallocation for batch-1 queries"
    embedder.embed(random_images(3))
    embedder.embed(random_images(3, seed=3))
    assert embedder.resizes == 1
    embedder.embed(random_images(10))  # chunks of 4, 4, 2: resized to 4 once, then to 2
    assert embedder.resizes == 3
    np.testing.assert_allclose(embedder.embed(random_images(1, seed=1)), first, atol=1e-6)


def test_tflite_embedder_is_safe_from_many_threads(exported):
    embedder = TFLiteEmbedder(exported.path, max_batch=4, pool_size=2)
    # Each thread its own images and batch sizes, so a mix-up between callers shows as wrong vectors.
    work = [random_images(1 + i % 6, seed=100 + i) for i in range(8)]
    expected = [embedder.embed(images) for images in work]
    start = threading.Barrier(len(work))
    results: dict[int, list[np.ndarray]] = {}

    def call(i: int) -> None:
        start.wait()
        results[i] = [embedder.embed(work[i]) for _ in range(10)]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(len(work)))
    for i, outputs in results.items():
        for out in outputs:
            np.testing.assert_allclose(out, expected[i], atol=1e-6)


def test_tflite_embedder_errors(exported, tmp_path, tflite_embedder):
    with pytest.raises(ModelNotFound, match="model.tflite"):
        TFLiteEmbedder(copy_version(exported, tmp_path / "none"))
    with pytest.raises(ModelNotFound, match="not a loadable TFLite model"):
        TFLiteEmbedder(copy_version(exported, tmp_path / "bad", tflite_bytes=b"not a flatbuffer"))
    with pytest.raises(InvalidInput):
        tflite_embedder.embed(random_images(1, size=TINY_SIZE + 1))
    with pytest.raises(InvalidInput):
        tflite_embedder.embed(random_images(1).astype(np.float32))
    closed = TFLiteEmbedder(exported.path)
    closed.close()
    assert not closed.ready()
    with pytest.raises(EmbedderError, match="closed"):
        closed.embed(random_images(1))


def test_open_local_embedder_prefers_tflite_and_falls_back(exported, tmp_path, local_embedder, caplog):
    images = random_images(2, seed=30)
    expected = local_embedder.embed(images)

    fast = open_local_embedder(exported.path, max_batch=8)
    assert isinstance(fast, TFLiteEmbedder) and fast.max_batch == 8
    assert_same_directions(fast.embed(images), expected)

    # A version exported before model.tflite existed.
    older = open_local_embedder(copy_version(exported, tmp_path / "old"), max_batch=8)
    assert isinstance(older, LocalEmbedder) and older.max_batch == 8
    np.testing.assert_allclose(older.embed(images), expected, atol=1e-6)

    # A model.tflite that does not load: the SavedModel answers, and the log says why.
    with caplog.at_level(logging.WARNING, logger="ml.serving"):
        broken = open_local_embedder(copy_version(exported, tmp_path / "broken", tflite_bytes=b"\0" * 64))
    assert isinstance(broken, LocalEmbedder)
    assert "did not load" in caplog.text

    assert isinstance(open_local_embedder(exported.path, prefer_tflite=False), LocalEmbedder)
    with pytest.raises(ModelNotFound):
        open_local_embedder(tmp_path / "nothing-here")


def test_both_embedders_agree(stub_server, local_embedder):
    images = random_images(5, seed=3)
    # max_batch=2 splits the request into three Predict calls.
    with TFServingEmbedder(stub_server.target, MODEL_NAME, 1, max_batch=2) as remote:
        assert remote.ready()
        assert (remote.image_size, remote.dim) == (TINY_SIZE, TINY_DIM)
        out = remote.embed(images)
    assert out.dtype == np.float32 and out.shape == (5, TINY_DIM)
    np.testing.assert_allclose(out, local_embedder.embed(images), atol=1e-5)


def test_stub_serves_the_tflite_model_like_tf_serving(stub_server, exported, models_dir, tflite_embedder):
    images = random_images(4, seed=40)
    assert stub_server.models.runtime(MODEL_NAME, 1) == "tflite"
    # image_size and dim come from GetModelMetadata: the signature embedded in model.tflite.
    with TFServingEmbedder(stub_server.target, MODEL_NAME, 1) as remote:
        assert (remote.image_size, remote.dim) == (TINY_SIZE, TINY_DIM)
        served = remote.embed(images)
    np.testing.assert_allclose(served, tflite_embedder.embed(images), atol=1e-6)

    from tests.support.tf_serving_stub import TFServingStub

    with (
        TFServingStub(models_dir, prefer_tflite=False) as saved_model_server,
        TFServingEmbedder(saved_model_server.target, MODEL_NAME, 1) as remote,
    ):
        assert saved_model_server.models.runtime(MODEL_NAME, 1) == "savedmodel"
        assert_same_directions(remote.embed(images), served)


def test_stub_without_tflite_signature_metadata_breaks_the_contract(exported, tmp_path):
    """Why ml.export embeds the SignatureDef: without it TF Serving names the signature by tensors."""
    from tests.support.tf_serving_stub import TFServingStub

    bare = tflite.convert_saved_model(exported.path)  # the converter's output, no metadata added
    assert tflite.read_signature_defs(bare) == {}
    copy_version(exported, tmp_path, tflite_bytes=bare)
    with TFServingStub(tmp_path) as server, TFServingEmbedder(server.target, MODEL_NAME, 1) as remote:
        assert server.models.runtime(MODEL_NAME, 1) == "tflite"
        with pytest.raises(BadEmbedding, match="signature"):
            remote.embed(random_images(1))


def test_unpinned_version_resolves_to_newest_and_stays_pinned(tfs_embedder, stub_server):
    with TFServingEmbedder(stub_server.target, MODEL_NAME) as remote:
        assert remote.version is None
        assert remote.embed(random_images(1)).shape == (1, TINY_DIM)
        assert remote.version == 1


def test_unknown_model_or_version(stub_server):
    with TFServingEmbedder(stub_server.target, "no-such-model", 1) as remote:
        assert not remote.ready()
        with pytest.raises(ModelNotFound):
            remote.embed(random_images(1))
    # image_size and dim given: no metadata lookup, so the NOT_FOUND comes from Predict itself.
    with TFServingEmbedder(stub_server.target, MODEL_NAME, 99, image_size=TINY_SIZE, dim=TINY_DIM) as remote:
        assert not remote.ready()
        with pytest.raises(ModelNotFound, match="99"):
            remote.embed(random_images(1))


def test_wrong_dimension_or_values_are_bad_embeddings(stub_server):
    # The caller expects 8 dimensions (e.g. the ModelVersion row) but the server's model has 16.
    with TFServingEmbedder(stub_server.target, MODEL_NAME, 1, dim=8) as remote, pytest.raises(BadEmbedding):
        remote.embed(random_images(2))
    with TFServingEmbedder(stub_server.target, MODEL_NAME, 1) as remote:
        stub_server.faults.output_dim = 8  # the server answers with fewer columns than its signature
        with pytest.raises(BadEmbedding, match="shape"):
            remote.embed(random_images(2))
        stub_server.faults.output_dim = None
        stub_server.faults.nan = True
        with pytest.raises(BadEmbedding, match="NaN"):
            remote.embed(random_images(2))


def test_invalid_input_is_rejected_before_sending(tfs_embedder):
    with pytest.raises(InvalidInput):
        tfs_embedder.embed(random_images(1, size=TINY_SIZE + 1))
    with pytest.raises(InvalidInput):
        tfs_embedder.embed(random_images(1).astype(np.float32))
    assert isinstance(InvalidInput("x"), ValueError)


def test_server_down_fails_fast_and_bounded():
    remote = TFServingEmbedder(
        f"127.0.0.1:{free_port()}",
        MODEL_NAME,
        1,
        timeout_s=0.5,
        retries=2,
        backoff_s=0.05,
        image_size=TINY_SIZE,
        dim=TINY_DIM,
    )
    start = time.monotonic()
    with pytest.raises(EmbedderUnavailable, match="3 attempts"):
        remote.embed(random_images(1))
    elapsed = time.monotonic() - start
    assert elapsed <= remote.worst_case_s + SLACK_S
    assert not remote.ready()
    remote.close()


def test_slow_server_hits_the_deadline(stub_server):
    stub_server.faults.delay_s = 0.6
    with TFServingEmbedder(
        stub_server.target,
        MODEL_NAME,
        1,
        timeout_s=0.2,
        retries=1,
        backoff_s=0.05,
        image_size=TINY_SIZE,
        dim=TINY_DIM,
    ) as remote:
        start = time.monotonic()
        with pytest.raises(EmbedderUnavailable, match="DEADLINE_EXCEEDED"):
            remote.embed(random_images(1))
        elapsed = time.monotonic() - start
    # Two attempts, each cut at its 0.2 s deadline: well under the server's 0.6 s delay per call.
    assert 0.4 <= elapsed <= remote.worst_case_s + SLACK_S


def test_stub_rejects_bad_input_name_and_dtype(stub_server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(stub_server.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        for key, array in [("pixels", random_images(1)), ("images", random_images(1).astype(np.float32))]:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL_NAME
            request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
            with pytest.raises(grpc.RpcError) as info:
                predict(request, timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
def test_outage_of_a_server_process_and_recovery(exported, models_dir, local_embedder):
    """Kill a real server process: typed, bounded failure; then the same embedder recovers."""
    from tests.support.tf_serving_stub import TFServingStub, spawn_stub

    child = spawn_stub(models_dir)
    images = random_images(2, seed=4)
    remote = TFServingEmbedder(child.target, MODEL_NAME, 1, timeout_s=1.0, retries=2, backoff_s=0.05)
    try:
        np.testing.assert_allclose(remote.embed(images), local_embedder.embed(images), atol=1e-5)
        child.kill()
        start = time.monotonic()
        with pytest.raises(EmbedderUnavailable):
            remote.embed(images)
        assert time.monotonic() - start <= remote.worst_case_s + SLACK_S
        assert not remote.ready()

        # The server comes back on the same port; the one channel reconnects by itself.
        with TFServingStub(models_dir, port=child.port):
            deadline = time.monotonic() + 10
            while not remote.ready() and time.monotonic() < deadline:
                time.sleep(0.1)
            np.testing.assert_allclose(remote.embed(images), local_embedder.embed(images), atol=1e-5)
    finally:
        child.kill()
        remote.close()
