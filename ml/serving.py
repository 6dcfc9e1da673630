"""Embedders: uint8 pixels in, float32 embeddings out, from TF Serving (gRPC) or in-process.

All implement :class:`Embedder` (docs/CONTRACTS.md) and return the same vectors for the same
exported version, so the search layer picks one by configuration and never by code path. In-process,
:func:`open_local_embedder` picks the version's ``model.tflite`` (:class:`TFLiteEmbedder`, the fast
CPU runtime) and falls back to its SavedModel (:class:`LocalEmbedder`).

Errors are typed so callers can choose: :class:`EmbedderUnavailable` is transient (a Celery task
retries it, the web page shows "try again"), :class:`ModelNotFound` and :class:`BadEmbedding` are
configuration faults that retrying cannot fix.

TensorFlow and the TF Serving protos (which import TensorFlow) load on first use, not at import, so
``import ml.serving`` stays cheap for processes that only need the error types.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

import numpy as np

from ml.export import INPUT_NAME, METADATA_DIR, METADATA_FILE, OUTPUT_NAME, SIGNATURE_NAME

logger = logging.getLogger(__name__)


class EmbedderError(Exception):
    """Base class of every embedder failure."""


class EmbedderUnavailable(EmbedderError):
    """The model server cannot be reached or did not answer in time (transient: retry later)."""


class ModelNotFound(EmbedderError):
    """The model name or pinned version is not served (configuration: do not retry)."""


class BadEmbedding(EmbedderError):
    """The model answered with the wrong shape, dimension, dtype or non-finite values."""


class InvalidInput(EmbedderError, ValueError):
    """The caller passed images that are not uint8 [N, image_size, image_size, 3]."""


class Embedder(ABC):
    """``embed(uint8 [N, S, S, 3]) -> float32 [N, D]``; ``image_size`` is S, ``dim`` is D."""

    max_batch: int = 32

    @property
    @abstractmethod
    def image_size(self) -> int: ...

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @abstractmethod
    def ready(self) -> bool:
        """True when the model is loaded/served and :meth:`embed` can be expected to succeed."""

    @abstractmethod
    def _embed_batch(self, images: np.ndarray) -> np.ndarray: ...

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = self._check_images(images)
        if images.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Capped batches bound the memory per call and the gRPC message size (224 px x 32 = 4.8 MB).
        parts = []
        for start in range(0, images.shape[0], self.max_batch):
            chunk = images[start : start + self.max_batch]
            parts.append(self._check_output(self._embed_batch(chunk), chunk.shape[0]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:  # noqa: B027 - optional hook, most embedders hold nothing
        """Release resources (channels); the embedder must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_images(self, images: Any) -> np.ndarray:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise InvalidInput("images must be a numpy uint8 array (use ml.preprocess)")
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise InvalidInput(f"images must be [N, {size}, {size}, 3], got {list(images.shape)}")
        return np.ascontiguousarray(images)

    def _check_output(self, out: np.ndarray, n: int) -> np.ndarray:
        if out.shape != (n, self.dim):
            raise BadEmbedding(f"model returned shape {list(out.shape)}, expected [{n}, {self.dim}]")
        if not np.all(np.isfinite(out)):
            raise BadEmbedding("model returned NaN or infinite values")
        return out.astype(np.float32, copy=False)


def read_model_metadata(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``assets.extra/lookalike.json`` of an exported version, or {} if it has none."""
    path = Path(model_dir) / METADATA_DIR / METADATA_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


class LocalEmbedder(Embedder):
    """The exported SavedModel run in this process (the embedded default; no server needed)."""

    def __init__(self, model_dir: str | os.PathLike[str], max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "saved_model.pb").is_file():
            raise ModelNotFound(f"no SavedModel at {self.model_dir}")
        self.max_batch = max_batch
        self.metadata = read_model_metadata(self.model_dir)
        import tensorflow as tf

        # Loaded once, here: a failure surfaces when the process starts, not on the first request.
        loaded = tf.saved_model.load(os.fspath(self.model_dir))
        if SIGNATURE_NAME not in loaded.signatures:
            raise ModelNotFound(f"{self.model_dir} has no {SIGNATURE_NAME!r} signature")
        fn = loaded.signatures[SIGNATURE_NAME]
        spec = fn.structured_input_signature[1].get(INPUT_NAME)
        out_spec = fn.structured_outputs.get(OUTPUT_NAME)
        if spec is None or out_spec is None:
            raise BadEmbedding(f"{self.model_dir}: signature lacks {INPUT_NAME!r} -> {OUTPUT_NAME!r}")
        self._image_size = int(self.metadata.get("image_size") or spec.shape[1])
        self._dim = int(self.metadata.get("embedding_dim") or out_spec.shape[-1])
        self._loaded = loaded  # keep the object alive: the signature references its variables
        self._tf = tf
        self._fn = fn

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def dim(self) -> int:
        return self._dim

    def ready(self) -> bool:
        return True  # loaded in __init__ or the constructor raised

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        # A concrete function may be called from several threads at once (TF runtime is thread-safe),
        # so there is no lock here: concurrent web requests run in parallel.
        out = self._fn(**{INPUT_NAME: self._tf.constant(images)})
        if OUTPUT_NAME not in out:
            raise BadEmbedding(f"model output lacks {OUTPUT_NAME!r}")
        return out[OUTPUT_NAME].numpy()


# Defaults for the in-process TFLite runtime, measured here with MobileNetV2-0.35 at 224 px (2 cores,
# Intel Xeon, load below 1, random pixels, after warm-up; two runs each where a range is given):
#   threads per interpreter   batch 1 p50    batch 32           2 callers at once, batch 1 / batch 32
#   1                         1.6-3.0 ms     360-450 images/s   1,290 / 720 images/s (pool of 2 x 1)
#   2                         1.0 ms         870-900 images/s   1,020 / 820 images/s (pool of 2 x 2)
# Two threads win both single-caller figures and still lead at batch 32 with two callers; two
# interpreters let two requests (web threads, an indexing batch) run at once instead of queueing,
# and the 4 threads they add up to on 2 cores cost little (the right-hand column). On a busy shared
# machine 2 threads lose more than 1 (the runtime note measured 5.6 ms against 2.0 ms at batch 1
# under load 1.5-4): pass num_threads=1 where the cores are already taken.
DEFAULT_TFLITE_THREADS = 2
DEFAULT_TFLITE_POOL = 2


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class TFLiteEmbedder(Embedder):
    """The version's ``model.tflite`` run in this process by the LiteRT interpreter (XNNPACK on CPU).

    An interpreter serves one caller at a time, so the embedder keeps ``pool_size`` of them: a call
    takes an idle one (preferring one already sized for its batch, as a resize re-plans the
    interpreter: about 0.5 ms at batch 1, and once 50-120 ms to grow its arena to batch 32), runs, and
    puts it back; more concurrent callers than interpreters wait their turn. Thread-safe.
    ``num_threads`` is per interpreter and is capped at the CPUs this process may use.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        max_batch: int = 32,
        num_threads: int = DEFAULT_TFLITE_THREADS,
        pool_size: int = DEFAULT_TFLITE_POOL,
    ) -> None:
        if max_batch < 1 or num_threads < 1 or pool_size < 1:
            raise ValueError("max_batch, num_threads and pool_size must be >= 1")
        from ml import tflite

        self.model_dir = Path(model_dir)
        path = tflite.tflite_path(self.model_dir)
        if path is None:
            raise ModelNotFound(f"no {tflite.TFLITE_FILE} in {self.model_dir}")
        self.max_batch = max_batch
        self.num_threads = min(num_threads, _cpu_count())
        self.pool_size = pool_size
        self.metadata = read_model_metadata(self.model_dir)
        # All interpreters load here (about 10 ms each for MobileNetV2-0.35): a broken file fails
        # when the process starts, not on a request.
        try:
            runners = [tflite.TFLiteRunner(path, num_threads=self.num_threads) for _ in range(pool_size)]
        except tflite.TFLiteModelError as exc:
            raise ModelNotFound(str(exc)) from exc
        self._image_size = runners[0].image_size
        self._dim = runners[0].dim
        size, dim = self.metadata.get("image_size"), self.metadata.get("embedding_dim")
        if (size and int(size) != self._image_size) or (dim and int(dim) != self._dim):
            raise BadEmbedding(
                f"{path} maps {self._image_size} px to {self._dim}-d but lookalike.json says {size} px, {dim}-d"
            )
        self._idle = runners
        self._all = list(runners)
        self._cond = threading.Condition()
        self._closed = False

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def dim(self) -> int:
        return self._dim

    def ready(self) -> bool:
        return not self._closed

    @property
    def resizes(self) -> int:
        """Input reallocations so far, over the pool (a repeated batch size costs none)."""
        return sum(r.resizes for r in self._all)

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        n = images.shape[0]
        with self._cond:
            while not self._idle and not self._closed:
                self._cond.wait()
            if self._closed:
                raise EmbedderError(f"TFLiteEmbedder for {self.model_dir} is closed")
            match = next((i for i, r in enumerate(self._idle) if r.batch == n), -1)
            runner = self._idle.pop(match)
        try:
            return runner.run(images)
        finally:
            with self._cond:
                if not self._closed:
                    self._idle.append(runner)
                    self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._idle = []
            self._cond.notify_all()
        # A call still running holds its runner; the interpreters go when the last user drops them.
        self._all = []


def open_local_embedder(
    model_dir: str | os.PathLike[str],
    max_batch: int = 32,
    *,
    num_threads: int = DEFAULT_TFLITE_THREADS,
    pool_size: int = DEFAULT_TFLITE_POOL,
    prefer_tflite: bool = True,
) -> Embedder:
    """The in-process embedder for an exported version folder: TFLite where possible, else SavedModel.

    Returns a :class:`TFLiteEmbedder` when ``model.tflite`` exists and loads, otherwise a
    :class:`LocalEmbedder` over the SavedModel (versions exported before ``model.tflite`` existed,
    or ``prefer_tflite=False``). A ``model.tflite`` that fails to load is logged and skipped. Raises
    :class:`ModelNotFound` when neither loads.
    """
    from ml import tflite

    if prefer_tflite and tflite.tflite_path(model_dir) is not None:
        try:
            return TFLiteEmbedder(model_dir, max_batch, num_threads=num_threads, pool_size=pool_size)
        except (ModelNotFound, BadEmbedding) as exc:
            logger.warning("using the SavedModel of %s: its TFLite model did not load (%s)", model_dir, exc)
    return LocalEmbedder(model_dir, max_batch)


# gRPC status codes retried: the server is restarting, overloaded or the network hiccupped. Anything
# else (NOT_FOUND, INVALID_ARGUMENT, ...) will fail the same way again.
_RETRIED = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
_DT_UINT8 = 4  # tensorflow.DataType enum values (types.proto); fixed by the wire format
_DT_FLOAT = 1
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_AVAILABLE = 30  # ModelVersionStatus.State.AVAILABLE


class TFServingEmbedder(Embedder):
    """TF Serving ``PredictionService.Predict`` over gRPC, pinned to one model version.

    With ``version=None`` the newest AVAILABLE version is resolved once (on the first :meth:`embed`,
    ``image_size`` or ``dim``) and pinned from then on, so one process never mixes vectors of two versions
    while TF Serving rolls to a new one. ``image_size`` and ``dim`` come from the server's signature
    (GetModelMetadata) unless given; a given ``dim`` that the server does not produce is a
    :class:`BadEmbedding`. Each RPC has a ``timeout_s`` deadline and is retried ``retries`` times
    (so at most ``retries + 1`` attempts) with exponential backoff from ``backoff_s``, only on
    UNAVAILABLE and DEADLINE_EXCEEDED. Worst case per batch: :attr:`worst_case_s`.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        version: int | None = None,
        max_batch: int = 32,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        *,
        image_size: int | None = None,
        dim: int | None = None,
        signature_name: str = SIGNATURE_NAME,
    ) -> None:
        if max_batch < 1 or timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("max_batch >= 1, timeout_s > 0, retries >= 0 and backoff_s >= 0 are required")
        import grpc
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        self._grpc = grpc
        self._predict_pb2 = predict_pb2
        self._status_pb2 = get_model_status_pb2
        self._metadata_pb2 = get_model_metadata_pb2
        self.target = target
        self.model_name = model_name
        self.version = version
        self.max_batch = max_batch
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.signature_name = signature_name
        self._image_size = image_size
        self._dim = dim
        self._lock = threading.Lock()
        # One channel for the embedder's life: channels multiplex concurrent calls and reconnect by
        # themselves. A short reconnect backoff (gRPC's default grows to 120 s) lets calls succeed
        # within seconds once TF Serving is back after a restart.
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel).Predict
        self._get_metadata = prediction_service_pb2_grpc.PredictionServiceStub(self._channel).GetModelMetadata
        self._get_status = model_service_pb2_grpc.ModelServiceStub(self._channel).GetModelStatus

    @property
    def worst_case_s(self) -> float:
        """Upper bound on one RPC with its retries: every attempt timing out plus every backoff."""
        backoffs = sum(self.backoff_s * 2**i for i in range(self.retries))
        return self.timeout_s * (self.retries + 1) + backoffs

    # -- gRPC plumbing -------------------------------------------------------------------------

    def _call(self, method: Any, request: Any) -> Any:
        grpc = self._grpc
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
                detail = exc.details() if hasattr(exc, "details") else str(exc)
                where = f"{self.model_name}:{self.version or 'latest'} at {self.target}"
                if code.name in _RETRIED:
                    if attempt < self.retries:
                        # Full jitter keeps many workers from retrying in lockstep after an outage.
                        time.sleep(self.backoff_s * 2**attempt * (0.5 + random.random() / 2))
                        continue
                    raise EmbedderUnavailable(
                        f"TF Serving {where}: {code.name} after {attempt + 1} attempts: {detail}"
                    ) from exc
                if code == grpc.StatusCode.NOT_FOUND:
                    raise ModelNotFound(f"TF Serving {where}: {detail}") from exc
                if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    # TF Serving's batching queue is full: transient, but retrying at once only adds load.
                    raise EmbedderUnavailable(f"TF Serving {where} is overloaded: {detail}") from exc
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    raise InvalidInput(f"TF Serving {where} rejected the request: {detail}") from exc
                raise EmbedderError(f"TF Serving {where}: {code.name}: {detail}") from exc
        raise AssertionError("unreachable")

    def _model_spec(self, spec: Any, *, with_signature: bool = True) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = int(self.version)
        if with_signature:
            spec.signature_name = self.signature_name

    def _resolve(self) -> None:
        """Pin the newest AVAILABLE version and learn image_size/dim from the server, once."""
        if self.version is not None and self._image_size is not None and self._dim is not None:
            return
        with self._lock:
            if self.version is None:
                request = self._status_pb2.GetModelStatusRequest()
                self._model_spec(request.model_spec, with_signature=False)
                response = self._call(self._get_status, request)
                available = [s.version for s in response.model_version_status if s.state == _AVAILABLE]
                if not available:
                    raise ModelNotFound(f"TF Serving has no AVAILABLE version of {self.model_name!r}")
                self.version = max(available)
            if self._image_size is None or self._dim is None:
                self._read_signature()

    def _read_signature(self) -> None:
        request = self._metadata_pb2.GetModelMetadataRequest()
        self._model_spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self._get_metadata, request)
        sig_map = self._metadata_pb2.SignatureDefMap()
        if not response.metadata["signature_def"].Unpack(sig_map):
            raise BadEmbedding("GetModelMetadata did not return a SignatureDefMap")
        if self.signature_name not in sig_map.signature_def:
            raise ModelNotFound(f"{self.model_name}:{self.version} has no signature {self.signature_name!r}")
        sig = sig_map.signature_def[self.signature_name]
        if INPUT_NAME not in sig.inputs or OUTPUT_NAME not in sig.outputs:
            raise BadEmbedding(f"signature is not {INPUT_NAME!r} -> {OUTPUT_NAME!r}")
        in_dims = [d.size for d in sig.inputs[INPUT_NAME].tensor_shape.dim]
        out_dims = [d.size for d in sig.outputs[OUTPUT_NAME].tensor_shape.dim]
        if len(in_dims) != 4 or len(out_dims) != 2 or in_dims[1] <= 0 or out_dims[1] <= 0:
            raise BadEmbedding(f"unexpected signature shapes {in_dims} -> {out_dims}")
        if self._image_size is None:
            self._image_size = int(in_dims[1])
        if self._dim is None:
            self._dim = int(out_dims[1])

    # -- Embedder interface ----------------------------------------------------------------------

    @property
    def image_size(self) -> int:
        self._resolve()
        assert self._image_size is not None
        return self._image_size

    @property
    def dim(self) -> int:
        self._resolve()
        assert self._dim is not None
        return self._dim

    def ready(self) -> bool:
        """True when the (pinned) version is AVAILABLE on the server; never raises."""
        try:
            request = self._status_pb2.GetModelStatusRequest()
            self._model_spec(request.model_spec, with_signature=False)
            response = self._get_status(request, timeout=self.timeout_s)
        except self._grpc.RpcError:
            return False
        return any(s.state == _AVAILABLE for s in response.model_version_status)

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        request = self._predict_pb2.PredictRequest()
        self._model_spec(request.model_spec)
        # The TensorProto is built by hand: tf.make_tensor_proto copies element by element and costs
        # milliseconds per batch; tensor_content is the raw little-endian buffer TF Serving reads.
        tensor = request.inputs[INPUT_NAME]
        tensor.dtype = _DT_UINT8
        for size in images.shape:
            tensor.tensor_shape.dim.add().size = int(size)
        tensor.tensor_content = images.tobytes()
        response = self._call(self._predict, request)
        if OUTPUT_NAME not in response.outputs:
            raise BadEmbedding(f"response has no {OUTPUT_NAME!r} output (got {sorted(response.outputs)})")
        return _tensor_to_float32(response.outputs[OUTPUT_NAME])

    def close(self) -> None:
        self._channel.close()


def _tensor_to_float32(tensor: Any) -> np.ndarray:
    """Decode a DT_FLOAT TensorProto (``tensor_content`` or ``float_val``) to a numpy array."""
    if tensor.dtype != _DT_FLOAT:
        raise BadEmbedding(f"embeddings have dtype enum {tensor.dtype}, expected DT_FLOAT")
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    count = int(np.prod(shape)) if shape else 1
    if tensor.tensor_content:
        flat = np.frombuffer(tensor.tensor_content, dtype="<f4")
    else:
        flat = np.asarray(tensor.float_val, dtype=np.float32)
        if flat.size == 1 and count > 1:  # proto shorthand: one value repeated over the shape
            flat = np.full(count, flat[0], dtype=np.float32)
    if flat.size != count:
        raise BadEmbedding(f"embeddings hold {flat.size} values for shape {list(shape)}")
    return flat.reshape(shape).astype(np.float32)


__all__ = [
    "BadEmbedding",
    "Embedder",
    "EmbedderError",
    "EmbedderUnavailable",
    "InvalidInput",
    "LocalEmbedder",
    "ModelNotFound",
    "TFLiteEmbedder",
    "TFServingEmbedder",
    "open_local_embedder",
    "read_model_metadata",
]
