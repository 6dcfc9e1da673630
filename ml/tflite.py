"""The TensorFlow Lite form of an exported version: conversion (TensorFlow) and one interpreter (LiteRT).

``ml.export`` writes ``model.tflite`` beside ``saved_model.pb`` in each version folder; TF Serving
with ``--prefer_tflite_model`` serves that file, and ``ml.serving.TFLiteEmbedder`` runs it in-process.
On this project's depthwise-heavy backbones the TFLite runtime (XNNPACK kernels) embeds one image
7-10x faster than the TensorFlow runtime on CPU (../shared/notes/embedding-runtimes.md).

The converter stays in TensorFlow; the interpreter is LiteRT's (``ai_edge_litert``), because
``tf.lite.Interpreter`` is deprecated in TensorFlow 2.21. Both load on first use, not at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME

TFLITE_FILE = "model.tflite"
# The quantized form of the same signature, beside the float file (which stays: the reference it is
# verified against, and the fallback; EMBEDDING_PRECISION=float serves it).
TFLITE_INT8_FILE = "model_int8.tflite"
PRECISIONS = ("int8", "float")
QUANTIZE_RECIPES = (None, "int8", "dynamic")
# TF Serving reads a TFLite model's signatures from this metadata entry (a FlexBuffer map of
# signature key -> serialized SignatureDef proto; tflite::GetSignatureDefMap), not from the
# flatbuffer's own signature table that the converter writes. Without it TF Serving invents a
# signature keyed by tensor names ("serving_default_images"), and clients asking for "images" fail.
SIGNATURE_DEFS_METADATA = "signature_defs_metadata"


class TFLiteModelError(Exception):
    """A ``.tflite`` model cannot be loaded or lacks the contract's ``images -> embeddings`` signature."""


def convert_saved_model(
    saved_model_dir: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    representative: np.ndarray | None = None,
) -> bytes:
    """The ``serving_default`` signature of a SavedModel as a TFLite flatbuffer.

    ``quantize=None``: float32, no optimisations (the reference every quantized file is checked
    against). ``"int8"``: full-integer post-training quantization: int8 weights and activations,
    their ranges calibrated on ``representative`` (uint8 [N, S, S, 3] model inputs, the shop's own
    photos through ``ml.preprocess``); the signature keeps its uint8 input and float32 output, so
    callers do not change, and an op without an int8 kernel stays float. ``"dynamic"``:
    dynamic-range quantization (int8 weights, float activations; no photos needed). On MobileNetV2-0.35
    dynamic-range was measured slower than float (10.9 ms vs 5.6 ms at batch 1).
    """
    import tensorflow as tf

    if quantize not in QUANTIZE_RECIPES:
        raise ValueError(f"quantize must be one of {QUANTIZE_RECIPES}, got {quantize!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model_dir), signature_keys=[SIGNATURE_NAME]
    )
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 quantization needs representative photos (uint8 [N, S, S, 3])")
        photos = np.ascontiguousarray(representative, dtype=np.uint8)

        def _samples() -> Any:
            for i in range(len(photos)):
                yield {INPUT_NAME: photos[i : i + 1]}

        converter.representative_dataset = _samples
    return bytes(converter.convert())


def add_signature_defs(flatbuffer: bytes, signature_defs: Mapping[str, bytes]) -> bytes:
    """``flatbuffer`` with ``signature_defs`` (key -> serialized SignatureDef) in its metadata for TF Serving.

    The SignatureDefs' TensorInfo names must be the TFLite model's tensor names. An existing entry is
    replaced. Mirrors tflite::SetSignatureDefMap, which the Python packages do not expose.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    from flatbuffers import flexbuffers

    if not signature_defs:
        raise ValueError("signature_defs must not be empty")
    builder = flexbuffers.Builder()
    with builder.Map():
        for key, serialized in signature_defs.items():
            builder.Key(key)
            # A FlexBuffer *string* holding binary proto bytes, as the C++ reader wants (AsString);
            # the public String() only takes text (it UTF-8-encodes), so the blob writer is called.
            builder._WriteBlob(bytes(serialized), append_zero=True, type_=flexbuffers.Type.STRING)
    payload = builder.Finish()

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != SIGNATURE_DEFS_METADATA]
    buffer = schema.BufferT()
    buffer.data = list(payload)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = SIGNATURE_DEFS_METADATA
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_signature_defs(flatbuffer: bytes) -> dict[str, bytes]:
    """The serialized SignatureDefs TF Serving would read from a TFLite model ({} when it has none)."""
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    model = schema.Model.GetRootAs(flatbuffer, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) == SIGNATURE_DEFS_METADATA:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            root = flexbuffers.GetRoot(bytes(data)).AsMap
            return {k.AsKey: v.AsStringBytes for k, v in zip(root.Keys, root.Values, strict=True)}
    return {}


def _name(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return "unknown"


class TFLiteRunner:
    """One LiteRT interpreter over a ``.tflite`` model; NOT thread-safe: one caller at a time.

    The batch dimension is dynamic. Resizing the input means ``allocate_tensors``, which re-plans
    the memory arena and the XNNPACK kernels, so the input is resized only when the batch size
    changes: repeated calls at one size never reallocate (:attr:`resizes` counts the reallocations).
    """

    def __init__(self, model: str | os.PathLike[str] | bytes, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise ValueError("num_threads must be >= 1")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # a project dependency; missing only in a broken environment
            raise TFLiteModelError("the TFLite runtime needs the ai-edge-litert package") from exc

        where = "the converted model" if isinstance(model, bytes) else os.fspath(model)
        try:
            if isinstance(model, bytes):
                interpreter = Interpreter(model_content=model, num_threads=num_threads)
            else:
                interpreter = Interpreter(model_path=os.fspath(model), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise TFLiteModelError(f"{where}: not a loadable TFLite model ({exc})") from exc
        self.source = where
        signatures = interpreter.get_signature_list()
        if SIGNATURE_NAME not in signatures:
            raise TFLiteModelError(f"{where}: no {SIGNATURE_NAME!r} signature (has {sorted(signatures)})")
        runner = interpreter.get_signature_runner(SIGNATURE_NAME)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        # The runner holds a reference to the interpreter's internals, and while it lives the
        # interpreter refuses to resize; its only use here is the name -> tensor index mapping.
        del runner
        if set(inputs) != {INPUT_NAME} or set(outputs) != {OUTPUT_NAME}:
            raise TFLiteModelError(
                f"{where}: signature is {sorted(inputs)} -> {sorted(outputs)}, "
                f"expected [{INPUT_NAME!r}] -> [{OUTPUT_NAME!r}]"
            )
        spec, out_spec = inputs[INPUT_NAME], outputs[OUTPUT_NAME]
        in_shape = [int(d) for d in spec["shape_signature"]]
        out_shape = [int(d) for d in out_spec["shape_signature"]]
        if spec["dtype"] != np.uint8 or len(in_shape) != 4 or in_shape[3] != 3 or in_shape[1] != in_shape[2]:
            raise TFLiteModelError(
                f"{where}: input is {spec['dtype'].__name__} {in_shape}, not uint8 [N,S,S,3]"
            )
        if out_spec["dtype"] != np.float32 or len(out_shape) != 2 or out_shape[1] < 1:
            raise TFLiteModelError(
                f"{where}: output is {out_spec['dtype'].__name__} {out_shape}, not float32 [N,D]"
            )
        # The plain interpreter calls below run the primary subgraph; a one-signature model from
        # the converter maps its signature there.
        if spec["index"] not in {d["index"] for d in interpreter.get_input_details()}:
            raise TFLiteModelError(f"{where}: the {SIGNATURE_NAME!r} signature is not the model's main graph")
        self.image_size = in_shape[1]
        self.dim = out_shape[1]
        self.input_tensor_name = str(spec["name"])  # what a SignatureDef's TensorInfo.name must say
        self.output_tensor_name = str(out_spec["name"])
        self._interpreter: Any = interpreter
        self._input = int(spec["index"])
        self._output = int(out_spec["index"])
        self._batch = int(spec["shape"][0])
        self.resizes = 0
        interpreter.allocate_tensors()

    @property
    def batch(self) -> int:
        """The batch size the interpreter is allocated for (calls at this size skip the reallocation)."""
        return self._batch

    def run(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] -> float32 [N, D]; the caller has checked the shape and dtype."""
        n = int(images.shape[0])
        if n != self._batch:
            self._interpreter.resize_tensor_input(
                self._input, [n, self.image_size, self.image_size, 3], strict=True
            )
            self._interpreter.allocate_tensors()
            self._batch = n
            self.resizes += 1
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()  # releases the GIL: other threads' interpreters run meanwhile
        return np.asarray(self._interpreter.get_tensor(self._output))  # a copy, safe to keep


def tflite_path(model_dir: str | os.PathLike[str], precision: str = "float") -> Path | None:
    """The version folder's ``model.tflite`` (``precision="float"``) or ``model_int8.tflite``
    (``"int8"``), or None where the version was exported without it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    path = Path(model_dir) / (TFLITE_INT8_FILE if precision == "int8" else TFLITE_FILE)
    return path if path.is_file() else None
