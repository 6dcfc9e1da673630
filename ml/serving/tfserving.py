"""TF Serving's PredictionService over gRPC."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np

from ml.serving.base import Embedder
from ml.serving.errors import BadEmbedding, EmbedderError, EmbedderUnavailable, InvalidInput, ModelNotFound
from ml.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME

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
        backoffs = sum(self.backoff_s * 2.0**i for i in range(self.retries))
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
