"""A test-only TF Serving: PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus) over the exported versions under a models_dir in TF Serving's layout.

``tensorflow_model_server`` cannot be installed here, so the TF Serving client is tested against
this server, which speaks the same protos and answers with the same status codes for the cases the
client handles (NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for a bad input).

Like TF Serving with ``--prefer_tflite_model=true`` (docker-compose.yml), a version folder that
holds ``model.tflite`` is served from that file through the TFLite runtime (``ml.serving.TFLiteEmbedder``),
with the signatures TF Serving would read from it: the ``signature_defs_metadata`` entry that
ml.export embeds, or, where that is missing, one keyed by tensor names as TF Serving invents it.
Otherwise, or with ``prefer_tflite=False``, the SavedModel runs in TensorFlow.

In-process::

    with TFServingStub(models_dir) as server:          # prefer_tflite=False: always the SavedModel
        embedder = TFServingEmbedder(server.target, "lookalike", 1)

As a process that a test can kill to simulate an outage::

    python -m tests.support.tf_serving_stub --models-dir D --port 0   # prints "LISTENING <port>"

or :func:`spawn_stub`, which does that and waits for the port.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from ml import tflite
from ml.serving import TFLiteEmbedder

DEFAULT_SIGNATURE = "serving_default"
_PREDICT_METHOD = "tensorflow/serving/predict"
# The stub's gRPC threads share these; TF Serving's --num_tflite_pools plays this part.
_TFLITE_INTERPRETERS = 2
_AVAILABLE = get_model_status_pb2.ModelVersionStatus.State.Value("AVAILABLE")
_REPO_ROOT = Path(__file__).resolve().parents[2]
_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


@dataclass
class Faults:
    """Misbehaviour a test can switch on while the server runs."""

    delay_s: float = 0.0  # sleep before answering Predict (to provoke DEADLINE_EXCEEDED)
    output_dim: int | None = None  # keep only this many embedding columns (wrong dimension)
    nan: bool = False  # answer NaN embeddings


@dataclass
class _Servable:
    runtime: str  # "tflite" or "savedmodel": which file answers, as TF Serving would choose
    signature_defs: Any  # {name: SignatureDef proto}: what GetModelMetadata returns and Predict checks
    run: Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]  # (signature, inputs) -> outputs
    keep_alive: Any = field(repr=False)


def _load_saved_model(path: Path) -> _Servable:
    loaded = tf.saved_model.load(os.fspath(path))
    proto = loader_impl.parse_saved_model(os.fspath(path))

    def run(signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    return _Servable("savedmodel", proto.meta_graphs[0].signature_def, run, keep_alive=loaded)


def _strip_index(tensor_name: str) -> str:
    # TF Serving accepts a TensorInfo name with or without the ":0" suffix (FixTfLiteTensorName).
    return tensor_name.split(":", 1)[0]


def _load_tflite(path: Path) -> _Servable:
    file = path / tflite.TFLITE_FILE
    embedder = TFLiteEmbedder(path, max_batch=1 << 16, num_threads=1, pool_size=_TFLITE_INTERPRETERS)
    probe = tflite.TFLiteRunner(file)
    input_tensor, output_tensor = probe.input_tensor_name, probe.output_tensor_name
    signature_defs: dict[str, Any] = {}
    for key, serialized in tflite.read_signature_defs(file.read_bytes()).items():
        signature_defs[key] = meta_graph_pb2.SignatureDef.FromString(serialized)
    if not signature_defs:
        # What TF Serving builds for a model without signature metadata: aliases are tensor names.
        mock = meta_graph_pb2.SignatureDef(method_name=_PREDICT_METHOD)
        for alias_map, tensor, dtype, shape in (
            (mock.inputs, input_tensor, tf.uint8, [1, probe.image_size, probe.image_size, 3]),
            (mock.outputs, output_tensor, tf.float32, [1, probe.dim]),
        ):
            info = alias_map[_strip_index(tensor)]
            info.name, info.dtype = tensor, dtype.as_datatype_enum
            for size in shape:
                info.tensor_shape.dim.add().size = size
        signature_defs[DEFAULT_SIGNATURE] = mock
    for key, signature in signature_defs.items():
        names = [_strip_index(i.name) for i in signature.inputs.values()]
        outs = [_strip_index(o.name) for o in signature.outputs.values()]
        if names != [_strip_index(input_tensor)] or outs != [_strip_index(output_tensor)]:
            raise ValueError(f"{file}: signature {key!r} names tensors {names} -> {outs} the model lacks")

    def run(signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # One input and one output (checked above): the aliases map straight onto the pool's runners.
        (images,) = inputs.values()
        out = embedder.embed(images)
        return {alias: out for alias in signature_defs[signature].outputs}

    return _Servable("tflite", signature_defs, run, keep_alive=embedder)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Models:
    """Loads ``<models_dir>/<name>/<version>/`` SavedModels, rescanning on a miss as TF Serving polls."""

    def __init__(self, models_dir: Path, prefer_tflite: bool = True) -> None:
        self.models_dir = models_dir
        self.prefer_tflite = prefer_tflite
        self._lock = threading.Lock()
        self._servables: dict[tuple[str, int], _Servable] = {}

    def _scan(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        if not self.models_dir.is_dir():
            return found
        for model in sorted(p for p in self.models_dir.iterdir() if p.is_dir()):
            versions = [
                int(v.name)
                for v in model.iterdir()
                if re.fullmatch(r"\d+", v.name) and (v / "saved_model.pb").is_file()
            ]
            if versions:
                found[model.name] = sorted(versions)
        return found

    def load_all(self) -> None:
        for name, versions in self._scan().items():
            for version in versions:
                self.get(name, version)

    def versions(self, name: str) -> list[int]:
        versions = self._scan().get(name)
        if not versions:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        return versions

    def get(self, name: str, version: int | None) -> tuple[int, _Servable]:
        versions = self.versions(name)
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
            )
        with self._lock:
            servable = self._servables.get((name, version))
            if servable is None:
                path = self.models_dir / name / str(version)
                use_tflite = self.prefer_tflite and (path / tflite.TFLITE_FILE).is_file()
                servable = _load_tflite(path) if use_tflite else _load_saved_model(path)
                self._servables[(name, version)] = servable
        return version, servable

    def runtime(self, name: str, version: int) -> str:
        """ "tflite" or "savedmodel": which runtime answers for this version."""
        return self.get(name, version)[1].runtime


def _requested(spec: Any) -> tuple[str, int | None]:
    return spec.name, (spec.version.value if spec.HasField("version") else None)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, models: _Models, faults: Faults) -> None:
        self.models = models
        self.faults = faults

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        try:
            return self._predict(request)
        except _Abort as exc:
            context.abort(exc.code, exc.message)

    def _predict(self, request: Any) -> Any:
        name, version = _requested(request.model_spec)
        version, servable = self.models.get(name, version)
        sig_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if sig_name not in servable.signature_defs:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Serving signature name: {sig_name!r} not found")
        expected = servable.signature_defs[sig_name].inputs
        if set(request.inputs) != set(expected):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input names {sorted(request.inputs)} do not match signature {sorted(expected)}",
            )
        args = {}
        for key, info in expected.items():
            proto = request.inputs[key]
            if proto.dtype != info.dtype:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expects arg[{key}] to be {tf.dtypes.as_dtype(info.dtype).name} "
                    f"but DataType {proto.dtype} is provided",
                )
            array = tf.make_ndarray(proto)
            dims = [d.size for d in info.tensor_shape.dim]
            if not info.tensor_shape.unknown_rank and (
                len(dims) != array.ndim
                or any(d not in (-1, n) for d, n in zip(dims, array.shape, strict=True))
            ):
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"input {key} shape {array.shape} is not {dims}"
                )
            args[key] = array
        if self.faults.delay_s:
            time.sleep(self.faults.delay_s)
        outputs = servable.run(sig_name, args)
        if self.faults.output_dim is not None:
            outputs = {k: v[:, : self.faults.output_dim] for k, v in outputs.items()}
        if self.faults.nan:
            outputs = {k: np.full_like(v, np.nan) for k, v in outputs.items()}
        response = predict_pb2.PredictResponse()
        response.model_spec.name = name
        response.model_spec.version.value = version
        response.model_spec.signature_name = sig_name
        for key, value in outputs.items():
            # make_tensor_proto on purpose: an encoder independent of the client's hand-built protos.
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            name, version = _requested(request.model_spec)
            version, servable = self.models.get(name, version)
            if list(request.metadata_field) != ["signature_def"]:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "only metadata_field signature_def is supported"
                )
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in servable.signature_defs.items():
            sig_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(sig_map)
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, models: _Models) -> None:
        self.models = models

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            name, version = _requested(request.model_spec)
            versions = self.models.versions(name)
            if version is not None:
                self.models.get(name, version)
                versions = [version]
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            status = response.model_version_status.add()
            status.version = v
            status.state = _AVAILABLE
            status.status.error_code = 0  # OK
        return response


class TFServingStub:
    """The test server; ``start()`` returns the port (0 picks a free one), ``stop()`` shuts it down."""

    def __init__(
        self,
        models_dir: str | os.PathLike[str],
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        prefer_tflite: bool = True,
    ) -> None:
        self.models = _Models(Path(models_dir), prefer_tflite=prefer_tflite)
        self.faults = Faults()
        self.host = host
        self.port = port
        self._server: grpc.Server | None = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        self.models.load_all()  # like TF Serving: models load before the port answers
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                # Without this a restarted server could share the port with a stale one.
                ("grpc.so_reuseport", 0),
            ],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self.models, self.faults), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self.models), server)
        port = server.add_insecure_port(f"{self.host}:{self.port}")
        if not port:
            raise OSError(f"cannot bind {self.host}:{self.port}")
        server.start()
        self.port = port
        self._server = server
        return port

    def stop(self, grace: float | None = None) -> None:
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class StubProcess:
    proc: subprocess.Popen[str]
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the outage a crashed server causes (no goodbye on open connections)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def spawn_stub(
    models_dir: str | os.PathLike[str], port: int = 0, timeout_s: float = 90.0, *, prefer_tflite: bool = True
) -> StubProcess:
    """Run the server in a child process and wait until it listens; the caller kills it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.tf_serving_stub", "--models-dir", os.fspath(models_dir)]
        + ["--port", str(port), "--prefer-tflite" if prefer_tflite else "--no-prefer-tflite"],
        cwd=_REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    # The child prints one line once serving; a watchdog kills it if that never comes.
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    match = re.fullmatch(r"LISTENING (\d+)\s*", line)
    if not match:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"stub server did not start (exit {proc.poll()}, said {line!r})")
    return StubProcess(proc=proc, port=int(match.group(1)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--prefer-tflite",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve a version's model.tflite where it has one (TF Serving's --prefer_tflite_model)",
    )
    args = parser.parse_args(argv)
    server = TFServingStub(args.models_dir, port=args.port, host=args.host, prefer_tflite=args.prefer_tflite)
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    print(f"LISTENING {server.port}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
