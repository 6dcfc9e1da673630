"""Export a Keras embedding model as a SavedModel in TF Serving's layout, verified before it appears.

``<models_dir>/<name>/<version>/`` holds a SavedModel whose ``serving_default`` signature takes
``images`` (uint8 [None, H, W, 3], the output of ``ml.preprocess``) and returns ``embeddings``
(float32 [None, D], L2-normalised), the same signature converted to TensorFlow Lite as
``model.tflite`` (the fast CPU runtime: ``ml.tflite``), plus ``assets.extra/lookalike.json``
(TF Serving ignores ``assets.extra``; our clients read it). See docs/CONTRACTS.md.

TF Serving polls ``<models_dir>/<name>/`` and loads any new numeric folder, so a version must never
be visible half-written: everything is written and verified in a dot-folder beside it (which the
poller skips, being non-numeric) and then renamed into place, an atomic step on one file system.

Export needs the TensorFlow backend and imports TensorFlow; it is not on the training path.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ml.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME

METADATA_DIR = "assets.extra"
METADATA_FILE = "lookalike.json"
DEFAULT_ATOL = 1e-5
# The TFLite model must point every verification embedding the same way as the SavedModel. Measured
# for MobileNetV2-0.35 (ImageNet weights, 224 px, 1280-d): at most 2.4e-6 apart per component,
# cosine 1 - 3e-11 (the runtime note saw up to 3.3e-5 against Keras). 0.9999 leaves room for other
# kernels' rounding yet catches a wrong op or weight: a model with its weights shifted by one channel
# scores far below it (tests/ml/test_export.py).
DEFAULT_TFLITE_MIN_COSINE = 0.9999
# Modules that register custom Keras objects (package="lookalike"); imported before loading a .keras
# file so deserialisation finds them. Missing ones are skipped (they may not exist yet).
_REGISTERING_MODULES = ("ml.model", "ml.losses")
# The quantized model (model_int8.tflite) is checked against the float model.tflite on shop photos
# the calibration never saw: every photo's cosine to its float embedding, and how often the nearest
# other photo stays the same (or one the float model scores as near). Measured on the default model
# (EfficientNet-Lite0 at 348 px + learned whitening to 256-d, 200 Grocery catalog photos calibrating,
# 50 held out): full-integer worst cosine 0.973, mean 0.986, nearest photo kept for 0.88 of them; it
# lost 0.010 val Recall@1 on shop photos and gained 0.010 on catalog images (docs/benchmarks.md).
# The bars sit below that, to catch a broken quantization (a wrong range, an op gone wrong), not to
# rank recipes: that is the benchmark's job (bench/int8.py).
DEFAULT_INT8_MIN_COSINE = 0.95
DEFAULT_INT8_MIN_TOP1 = 0.8
# Recipes tried in order until one passes. Full-integer only by default: dynamic-range (int8 weights,
# float activations) measured 1.5-2x slower than the float file at batch 1 here (docs/benchmarks.md),
# so as a fallback it would serve slower than no int8 file at all. Pass ("int8", "dynamic") where
# dynamic-range pays (it keeps closer to the float vectors: val R@1 -0.007 vs -0.010).
DEFAULT_INT8_RECIPES = ("int8",)
# Every INT8_HOLDOUT_EVERY-th photo is held out of the calibration to verify on; fewer photos than
# INT8_MIN_PHOTOS leave too few of either, and no int8 file is written.
INT8_HOLDOUT_EVERY = 5
INT8_MIN_PHOTOS = 10
INT8_TOP1_SLACK = 0.01
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODEL_NAME_RE = re.compile(r"^lookalike_(?P<backbone>.+?)_(?:embed\d+|bootstrap)$")


class ExportError(Exception):
    """Export could not produce a valid, verified model version."""


class VersionExistsError(ExportError, FileExistsError):
    """The target version folder already exists; versions are immutable once served."""


class ExportVerificationError(ExportError):
    """The reloaded SavedModel disagrees with the Keras model or has the wrong signature."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    image_size: int
    embedding_dim: int
    max_abs_diff: float
    name: str = ""
    version: int = 0
    backbone: str = ""
    tflite_path: Path | None = None  # None when exported with tflite=False
    tflite_max_abs_diff: float | None = None
    tflite_int8_path: Path | None = None  # None unless int8 photos were given and a recipe verified
    tflite_int8: dict[str, Any] | None = None  # lookalike.json's entry: the recipe and its check, or why none


def _register_custom_objects() -> None:
    for module in _REGISTERING_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """Load a ``.keras`` file with the project's custom objects registered (no optimizer state)."""
    import keras

    _register_custom_objects()
    return keras.saving.load_model(os.fspath(path), compile=False)


def _model_shapes(model: Any) -> tuple[int, int]:
    in_shape = tuple(model.input_shape)
    out_shape = tuple(model.output_shape)
    if len(in_shape) != 4 or in_shape[3] != 3 or in_shape[1] is None or in_shape[1] != in_shape[2]:
        raise ExportError(f"model input must be [N, S, S, 3] with a fixed square size S, got {in_shape}")
    if len(out_shape) != 2 or out_shape[1] is None:
        raise ExportError(f"model output must be [N, D] with a fixed D, got {out_shape}")
    return int(in_shape[1]), int(out_shape[1])


def _guess_backbone(model: Any) -> str:
    # ml.model names models "lookalike_<backbone>_embed<D>" / "lookalike_<backbone>_bootstrap".
    match = _MODEL_NAME_RE.match(getattr(model, "name", "") or "")
    return match.group("backbone") if match else str(getattr(model, "name", "unknown"))


def _write_saved_model(model: Any, out_dir: Path, image_size: int) -> None:
    import tensorflow as tf

    input_dtype = getattr(model.inputs[0], "dtype", "float32") if model.inputs else "float32"
    # The model scales 0..255 itself; its Input is float32 (ml.model), so cast unless it takes uint8.
    cast_to = tf.uint8 if str(input_dtype) == "uint8" else tf.float32

    def _serve(images: Any) -> dict[str, Any]:
        out = model(tf.cast(images, cast_to), training=False)
        return {OUTPUT_NAME: tf.cast(out, tf.float32)}

    # tf.function called, not used as a decorator: TensorFlow has no types, and an untyped decorator
    # would erase _serve's signature for mypy.
    serve = tf.function(
        _serve,
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.uint8, name=INPUT_NAME)],
    )

    concrete = serve.get_concrete_function()
    # Track only the model's variables, not its layers: a SavedModel needs the variables the
    # signature captures, and walking ~150 Keras layers made saving MobileNetV2 2.5x slower
    # (measured: 10.3 s with keras.export.ExportArchive, 4.1 s this way; reload 2.7 s -> 1.0 s).
    # Anything else the graph captures (a lookup table, say) makes this fail; then the whole model
    # is tracked instead.
    root = tf.Module()
    root.variables_ = [getattr(v, "value", v) for v in model.variables]
    try:
        tf.saved_model.save(root, os.fspath(out_dir), signatures={SIGNATURE_NAME: concrete})
    except (AssertionError, ValueError):
        shutil.rmtree(out_dir, ignore_errors=True)
        root = tf.Module()
        root.model = model
        tf.saved_model.save(root, os.fspath(out_dir), signatures={SIGNATURE_NAME: concrete})


def _verification_images(image_size: int) -> np.ndarray:
    """Four images of random pixels and two smooth ones, uint8 [6, S, S, 3].

    Random pixels exercise the whole value range; smooth gradients look more like photos to the
    network (large uniform regions, low frequencies), so both kinds of activation are compared.
    A fixed seed keeps a failure reproducible.
    """
    noise = np.random.default_rng(0).integers(0, 256, size=(4, image_size, image_size, 3), dtype=np.uint8)
    ramp = np.linspace(0.0, 1.0, image_size)
    y, x = np.meshgrid(ramp, ramp, indexing="ij")
    gradient = np.stack([x, y, 1.0 - (x + y) / 2], axis=-1)
    waves = np.stack(
        [
            0.5 + 0.5 * np.sin(2 * np.pi * x),
            0.5 + 0.5 * np.cos(3 * np.pi * y),
            0.5 + 0.5 * np.sin(np.pi * (x + y)),
        ],
        axis=-1,
    )
    smooth = (np.stack([gradient, waves]) * 255).round().astype(np.uint8)
    return np.concatenate([noise, smooth])


def _verify(model: Any, out_dir: Path, image_size: int, dim: int, atol: float) -> tuple[float, np.ndarray]:
    """Check the reloaded SavedModel; returns (max abs diff to Keras, its embeddings of the check images)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(out_dir))
    if SIGNATURE_NAME not in loaded.signatures:
        raise ExportVerificationError(f"no {SIGNATURE_NAME!r} signature in {sorted(loaded.signatures)}")
    fn = loaded.signatures[SIGNATURE_NAME]
    args, kwargs = fn.structured_input_signature
    spec = kwargs.get(INPUT_NAME)
    if args or set(kwargs) != {INPUT_NAME} or spec is None:
        raise ExportVerificationError(f"signature inputs must be exactly {INPUT_NAME!r}, got {kwargs}")
    if spec.dtype != tf.uint8 or spec.shape.as_list() != [None, image_size, image_size, 3]:
        raise ExportVerificationError(f"input spec {spec} != uint8 [None, {image_size}, {image_size}, 3]")
    outputs = fn.structured_outputs
    if set(outputs) != {OUTPUT_NAME}:
        raise ExportVerificationError(f"signature outputs must be exactly {OUTPUT_NAME!r}, got {outputs}")
    ospec = outputs[OUTPUT_NAME]
    if ospec.dtype != tf.float32 or ospec.shape.as_list() != [None, dim]:
        raise ExportVerificationError(f"output spec {ospec} != float32 [None, {dim}]")

    images = _verification_images(image_size)
    served = fn(images=tf.constant(images))[OUTPUT_NAME].numpy()
    expected = np.asarray(model(images.astype(np.float32), training=False), dtype=np.float32)
    if served.shape != (len(images), dim) or not np.all(np.isfinite(served)):
        raise ExportVerificationError(f"reloaded model returned shape {served.shape} or non-finite values")
    diff = float(np.max(np.abs(served - expected)))
    if diff > atol:
        raise ExportVerificationError(
            f"reloaded SavedModel differs from the Keras model by {diff:.3g} > {atol}"
        )
    norms = np.linalg.norm(served, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise ExportVerificationError(f"embeddings are not L2-normalised (norms {norms.round(4).tolist()})")
    return diff, served


def _tflite_signature_def(saved_model_dir: Path, runner: Any) -> Any:
    """The SavedModel's serving SignatureDef, its TensorInfo names pointed at the TFLite model's tensors.

    Embedded in model.tflite so TF Serving (--prefer_tflite_model) answers GetModelMetadata and
    Predict with the same ``images`` -> ``embeddings`` signature as for the SavedModel.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((saved_model_dir / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def[SIGNATURE_NAME]
    signature.inputs[INPUT_NAME].name = runner.input_tensor_name
    signature.outputs[OUTPUT_NAME].name = runner.output_tensor_name
    return signature


def _write_and_verify_tflite(
    out_dir: Path, image_size: int, expected: np.ndarray, min_cosine: float
) -> dict[str, Any]:
    """Convert the SavedModel in ``out_dir`` to ``model.tflite`` there and check it against ``expected``.

    ``expected`` is the SavedModel's output for :func:`_verification_images`. The TFLite model runs
    them as one batch and the first image alone (which also exercises the dynamic batch dimension);
    every row must have cosine >= ``min_cosine`` with the SavedModel's. Returns the metadata entry.
    """
    from ml import tflite

    started = time.perf_counter()
    try:
        flatbuffer = tflite.convert_saved_model(out_dir)
    except Exception as exc:  # the converter raises its own ConverterError and assorted others
        detail = " ".join(str(exc).split())[:300]
        raise ExportError(
            f"TFLite conversion failed ({type(exc).__name__}: {detail}); "
            "export with tflite=False for a SavedModel only"
        ) from exc
    convert_s = time.perf_counter() - started
    path = out_dir / tflite.TFLITE_FILE
    try:
        names = tflite.TFLiteRunner(flatbuffer)
        flatbuffer = tflite.add_signature_defs(
            flatbuffer, {SIGNATURE_NAME: _tflite_signature_def(out_dir, names).SerializeToString()}
        )
        path.write_bytes(flatbuffer)
        runner = tflite.TFLiteRunner(path)
    except tflite.TFLiteModelError as exc:
        raise ExportVerificationError(f"converted TFLite model is unusable: {exc}") from exc
    if (runner.image_size, runner.dim) != (image_size, expected.shape[1]):
        raise ExportVerificationError(
            f"TFLite model maps {runner.image_size} px to {runner.dim}-d, "
            f"expected {image_size} px to {expected.shape[1]}-d"
        )
    images = _verification_images(image_size)
    batch = runner.run(images)
    single = runner.run(images[:1])
    got = np.concatenate([batch, single])
    want = np.concatenate([expected, expected[:1]])
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        raise ExportVerificationError(f"TFLite model returned shape {list(got.shape)} or non-finite values")
    cosine = np.sum(got.astype(np.float64) * want, axis=1) / (
        np.linalg.norm(got.astype(np.float64), axis=1) * np.linalg.norm(want.astype(np.float64), axis=1)
    )
    worst = float(np.min(cosine))
    if not np.all(cosine >= min_cosine):  # also catches NaN from a zero vector
        raise ExportVerificationError(
            f"TFLite model disagrees with the SavedModel: cosine {worst:.6f} < {min_cosine} on a check image"
        )
    return {
        "file": tflite.TFLITE_FILE,
        "bytes": len(flatbuffer),
        "min_cosine": worst,
        "max_abs_diff": float(np.max(np.abs(got - want))),
        "convert_s": round(convert_s, 2),
        "litert_version": tflite.litert_version(),
    }


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero vector gives NaN, which fails the check
        return np.asarray(
            np.sum(a64 * b64, axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
        )


def _top1_agreement(float_q: np.ndarray, float_g: np.ndarray, q: np.ndarray, g: np.ndarray) -> float:
    """Share of queries whose nearest gallery photo under the quantized model (its queries against its
    own gallery, as a served index would be) is the float model's nearest too, or one the float model
    scores within ``INT8_TOP1_SLACK`` of it: two near-identical photos of one product may swap places
    without any search getting worse."""
    float_scores = float_q @ float_g.T
    picked = np.argmax(q @ g.T, axis=1)
    best = float_scores.max(axis=1)
    return float(np.mean(float_scores[np.arange(len(q)), picked] >= best - INT8_TOP1_SLACK))


def _write_and_verify_int8(
    out_dir: Path,
    image_size: int,
    photos: np.ndarray,
    *,
    min_cosine: float,
    min_top1: float,
    recipes: tuple[str, ...],
) -> dict[str, Any]:
    """Quantize the SavedModel in ``out_dir`` to ``model_int8.tflite`` there, verified against its
    ``model.tflite``; returns the metadata entry.

    ``photos`` (the shop's photos through ``ml.preprocess``) are split: every
    ``INT8_HOLDOUT_EVERY``-th is held out, the rest calibrate. The held-out photos run through both
    files (as one batch, and the first alone); each must keep cosine >= ``min_cosine`` to its float
    embedding, and at least ``min_top1`` of them the same nearest calibration photo. ``recipes`` are
    tried in order; the first that passes is written. When none passes (or a conversion fails), no
    file is written and ``file`` is None: the float model serves, and ``reason`` and ``tried`` say why.
    """
    from ml import tflite

    entry: dict[str, Any] = {"file": None, "photos": int(len(photos)), "tried": []}
    if len(photos) < INT8_MIN_PHOTOS:
        entry["reason"] = f"{len(photos)} photos given, {INT8_MIN_PHOTOS} needed to calibrate and verify"
        return entry
    held_mask = np.arange(len(photos)) % INT8_HOLDOUT_EVERY == 0
    held, calibration = photos[held_mask], photos[~held_mask]
    entry.update(calibration_photos=int(len(calibration)), verification_photos=int(len(held)))
    reference = tflite.TFLiteRunner(out_dir / tflite.TFLITE_FILE)
    float_q = reference.run(held)
    float_g = reference.run(calibration)
    for recipe in recipes:
        started = time.perf_counter()
        attempt: dict[str, Any] = {"recipe": recipe}
        entry["tried"].append(attempt)
        try:
            flatbuffer = tflite.convert_saved_model(
                out_dir, quantize=recipe, representative=calibration if recipe == "int8" else None
            )
            runner = tflite.TFLiteRunner(flatbuffer)
        except Exception as exc:  # the converter raises its own ConverterError and assorted others
            attempt["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            continue
        attempt["convert_s"] = round(time.perf_counter() - started, 2)
        if (runner.image_size, runner.dim) != (image_size, float_q.shape[1]):
            attempt["error"] = f"maps {runner.image_size} px to {runner.dim}-d"
            continue
        q = np.concatenate([runner.run(held), runner.run(held[:1])])
        cosine = _cosines(q, np.concatenate([float_q, float_q[:1]]))
        top1 = _top1_agreement(float_q, float_g, q[: len(held)], runner.run(calibration))
        attempt.update(
            min_cosine=round(float(np.min(cosine)), 6),
            mean_cosine=round(float(np.mean(cosine)), 6),
            top1_agreement=round(top1, 4),
        )
        if not np.all(np.isfinite(q)) or not np.all(cosine >= min_cosine):  # NaN fails too
            attempt["error"] = f"cosine {np.min(cosine):.4f} < {min_cosine} on a held-out photo"
            continue
        if top1 < min_top1:
            attempt["error"] = f"nearest photo kept for {top1:.3f} < {min_top1} of the held-out photos"
            continue
        (out_dir / tflite.TFLITE_INT8_FILE).write_bytes(flatbuffer)
        entry.update(attempt)
        entry.update(file=tflite.TFLITE_INT8_FILE, bytes=len(flatbuffer))
        entry.update(min_cosine_required=min_cosine, min_top1_required=min_top1)
        return entry
    entry["reason"] = "no recipe passed: " + "; ".join(
        f"{a['recipe']}: {a.get('error')}" for a in entry["tried"]
    )
    return entry


def int8_summary(entry: dict[str, Any] | None) -> dict[str, Any]:
    """What a model version records about its int8 file (``ModelVersion.config["int8"]``): the recipe
    and its check, or why there is none."""
    if not entry:
        return {"file": None, "reason": "exported without int8 photos"}
    if not entry.get("file"):
        return {"file": None, "reason": str(entry.get("reason", ""))[:300]}
    keys = ("file", "recipe", "min_cosine", "mean_cosine", "top1_agreement", "calibration_photos")
    return {key: entry.get(key) for key in keys}


def export_saved_model(
    model_or_keras_path: Any,
    models_dir: str | os.PathLike[str],
    name: str,
    version: int,
    *,
    backbone: str | None = None,
    atol: float = DEFAULT_ATOL,
    tflite: bool = True,
    tflite_min_cosine: float = DEFAULT_TFLITE_MIN_COSINE,
    int8_photos: np.ndarray | None = None,
    int8_min_cosine: float = DEFAULT_INT8_MIN_COSINE,
    int8_min_top1: float = DEFAULT_INT8_MIN_TOP1,
    int8_recipes: tuple[str, ...] = DEFAULT_INT8_RECIPES,
) -> ExportResult:
    """Write ``<models_dir>/<name>/<version>/`` (SavedModel, model.tflite, metadata), verified; see module doc.

    ``model_or_keras_path`` is a ``keras.Model`` or a path to a ``.keras`` file. ``backbone`` goes into
    the metadata; by default it is read from the model's name (set by ``ml.model``). ``tflite=False``
    writes the SavedModel only (conversion adds seconds: about 8 s for MobileNetV2-0.35).
    ``int8_photos`` (uint8 [N, S, S, 3]: the shop's photos through ``ml.preprocess``, a few hundred)
    adds ``model_int8.tflite``, quantized and verified against ``model.tflite`` (see
    :func:`_write_and_verify_int8`); a quantized model that fails its check is not written, the
    export goes on, and ``lookalike.json``'s ``tflite_int8`` says why.
    Raises VersionExistsError if the version exists, ExportVerificationError if the reload disagrees
    by more than ``atol`` or the TFLite model's cosine to it falls below ``tflite_min_cosine``,
    ExportError for an unusable model, a failed conversion or a non-TensorFlow Keras backend.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            f"export needs the TensorFlow Keras backend, not {keras.backend.backend()!r}; "
            "run it with KERAS_BACKEND=tensorflow"
        )
    if not _NAME_RE.match(name):
        raise ExportError(f"model name {name!r} must be letters, digits, '_', '.', '-' (no leading dot)")
    if isinstance(version, bool) or not isinstance(version, int | np.integer) or version < 0:
        raise ExportError(f"version must be a non-negative integer, got {version!r}")
    version = int(version)

    model_root = Path(models_dir) / name
    final_dir = model_root / str(version)
    if final_dir.exists():
        raise VersionExistsError(f"{final_dir} already exists; export a new version instead")

    if isinstance(model_or_keras_path, str | os.PathLike):
        model = load_keras_model(model_or_keras_path)
    else:
        model = model_or_keras_path
    image_size, dim = _model_shapes(model)
    backbone = backbone or _guess_backbone(model)
    if int8_photos is not None:
        if not tflite:
            raise ExportError(
                "int8_photos needs tflite=True: the quantized model is checked against model.tflite"
            )
        shape = getattr(int8_photos, "shape", None)
        if (
            getattr(int8_photos, "dtype", None) != np.uint8
            or shape is None
            or tuple(shape[1:])
            != (
                image_size,
                image_size,
                3,
            )
        ):
            raise ExportError(f"int8_photos must be uint8 [N, {image_size}, {image_size}, 3], got {shape}")

    model_root.mkdir(parents=True, exist_ok=True)
    tmp_dir = model_root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        _write_saved_model(model, tmp_dir, image_size)
        diff, served = _verify(model, tmp_dir, image_size, dim, atol)
        tflite_meta = (
            _write_and_verify_tflite(tmp_dir, image_size, served, tflite_min_cosine) if tflite else None
        )
        int8_meta = (
            _write_and_verify_int8(
                tmp_dir,
                image_size,
                int8_photos,
                min_cosine=int8_min_cosine,
                min_top1=int8_min_top1,
                recipes=tuple(int8_recipes),
            )
            if int8_photos is not None
            else None
        )
        import tensorflow as tf

        meta = {
            "image_size": image_size,
            "embedding_dim": dim,
            "backbone": backbone,
            "name": name,
            "version": version,
            "signature": SIGNATURE_NAME,
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "input_dtype": "uint8",
            "l2_normalized": True,
            "keras_model_name": str(getattr(model, "name", "")),
            "max_abs_diff": diff,
            "tflite": tflite_meta,
            "tflite_int8": int8_meta,
            "keras_version": keras.__version__,
            "tensorflow_version": tf.__version__,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp_dir / METADATA_DIR).mkdir(exist_ok=True)
        (tmp_dir / METADATA_DIR / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if final_dir.exists():  # another export won the race while we worked
            raise VersionExistsError(f"{final_dir} appeared during export; export a new version instead")
        try:
            os.rename(tmp_dir, final_dir)
        except OSError as exc:  # ENOTEMPTY/EEXIST: the same race, lost at the last moment
            raise VersionExistsError(f"{final_dir} appeared during export") from exc
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return ExportResult(
        path=final_dir,
        image_size=image_size,
        embedding_dim=dim,
        max_abs_diff=diff,
        name=name,
        version=version,
        backbone=backbone,
        tflite_path=final_dir / tflite_meta["file"] if tflite_meta else None,
        tflite_max_abs_diff=tflite_meta["max_abs_diff"] if tflite_meta else None,
        tflite_int8_path=final_dir / int8_meta["file"] if int8_meta and int8_meta["file"] else None,
        tflite_int8=int8_meta,
    )
