"""EfficientNet-Lite0/1/2 from plain Keras layers, with layer names that map 1:1 to the PyTorch state dict.

Lite is EfficientNet-B* made friendly to integer accelerators: no squeeze-and-excitation, ReLU6
instead of swish, and the stem (32 filters), the head (1280) and the repeats of the first and last
stages are not scaled. The numbers follow Google's lite builder (tensorflow/tpu,
models/official/efficientnet/lite) so that its ImageNet weights load unchanged.

Layer names are the state-dict prefixes made Keras-safe: ``_blocks.3._bn0`` is layer
``blocks_3_bn0`` (see :func:`layer_name` and :func:`state_dict_prefix`). In each block ``bn0``
follows the expansion conv, ``bn1`` the depthwise conv and ``bn2`` the projection; the stem's
BatchNorm is ``bn0`` and the head's ``bn1``.

The model expects inputs already scaled by :data:`INPUT_SCALING`; ``include_top=True`` ends in the
1000 ImageNet logits (no softmax, as in the PyTorch model). Only Keras layers are used, so it runs on
any Keras backend.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import keras

# (repeats, kernel, stride, expansion, in filters, out filters) of the seven stages before scaling.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# variant -> (width multiplier, depth multiplier, native resolution in px).
VARIANTS: dict[int, tuple[float, float, int]] = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260)}
STEM_FILTERS = 32
HEAD_FILTERS = 1280
NUM_CLASSES = 1000
BN_EPSILON = 1e-3  # TensorFlow's default, which the weights were trained with (PyTorch's is 1e-5)
# Google's lite builder normalises RGB 0..255 with mean 127 and std 128: x * scale + offset.
INPUT_SCALING = (1.0 / 128.0, -127.0 / 128.0)


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual (MBConv) block after width and depth scaling."""

    kernel: int
    stride: int
    expansion: int
    in_filters: int
    out_filters: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_filters == self.out_filters


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    # Google's rule: nearest multiple of 8, but never more than 10 % below the scaled width.
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def check_variant(variant: int) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(VARIANTS)}, not {variant!r}")


def native_resolution(variant: int) -> int:
    check_variant(variant)
    return VARIANTS[variant][2]


def block_specs(variant: int) -> list[BlockSpec]:
    """Every block of ``efficientnet_lite<variant>`` in order (index = ``_blocks.<index>``)."""
    check_variant(variant)
    width, depth, _ = VARIANTS[variant]
    specs: list[BlockSpec] = []
    for i, (repeats, kernel, stride, expansion, in_f, out_f) in enumerate(_STAGES):
        fixed = i in (0, len(_STAGES) - 1)  # Lite keeps the first and last stage's depth
        n = repeats if fixed else int(math.ceil(depth * repeats))
        in_f, out_f = _round_filters(in_f, width), _round_filters(out_f, width)
        for j in range(n):
            # Only a stage's first block changes stride and width; the rest keep both.
            specs.append(
                BlockSpec(kernel, stride if j == 0 else 1, expansion, in_f if j == 0 else out_f, out_f)
            )
    return specs


def layer_name(prefix: str) -> str:
    """Keras layer name for a state-dict prefix: ``_blocks.3._bn0`` -> ``blocks_3_bn0``."""
    return prefix.replace("._", "_").replace(".", "_").lstrip("_")


_BLOCK_LAYER = re.compile(r"^blocks_(\d+)_(.+)$")


def state_dict_prefix(name: str) -> str:
    """Inverse of :func:`layer_name`: ``blocks_3_bn0`` -> ``_blocks.3._bn0``, ``conv_head`` -> ``_conv_head``."""
    match = _BLOCK_LAYER.match(name)
    return f"_blocks.{match.group(1)}._{match.group(2)}" if match else f"_{name}"


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, conv: str, bn: str
) -> keras.KerasTensor:
    # padding="same" pads like TensorFlow (the extra row/column of an odd total goes bottom/right),
    # which is what the weights were trained with; the PyTorch port pads the same way explicitly.
    x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=layer_name(conv))(x)
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=layer_name(bn))(x)


def _block(x: keras.KerasTensor, spec: BlockSpec, index: int) -> keras.KerasTensor:
    p = f"_blocks.{index}."
    inputs = x
    if spec.expansion != 1:  # with expansion 1 the state dict has no _expand_conv / _bn0
        x = _conv_bn(x, spec.in_filters * spec.expansion, 1, 1, p + "_expand_conv", p + "_bn0")
        x = keras.layers.ReLU(6.0, name=layer_name(p + "expand_relu"))(x)
    x = keras.layers.DepthwiseConv2D(
        spec.kernel, spec.stride, padding="same", use_bias=False, name=layer_name(p + "_depthwise_conv")
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=layer_name(p + "_bn1"))(x)
    x = keras.layers.ReLU(6.0, name=layer_name(p + "depthwise_relu"))(x)
    x = _conv_bn(x, spec.out_filters, 1, 1, p + "_project_conv", p + "_bn2")
    if spec.residual:  # drop-connect is training-only, so inference is a plain add
        x = keras.layers.Add(name=layer_name(p + "add"))([inputs, x])
    return x


def build_efficientnet_lite(
    variant: int, input_shape: tuple[int, int, int] | None = None, include_top: bool = False
) -> keras.Model:
    """``efficientnet_lite<variant>`` (0, 1 or 2) with random weights; see the module docstring.

    ``input_shape`` defaults to the native resolution (224, 240, 260 px); any size from 32 px works.
    Without the top the output is the head's [N, h, w, 1280] feature map.
    """
    check_variant(variant)
    if input_shape is None:
        size = native_resolution(variant)
        input_shape = (size, size, 3)
    inputs = keras.Input(shape=input_shape, name="input")
    x = _conv_bn(inputs, STEM_FILTERS, 3, 2, "_conv_stem", "_bn0")
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    for index, spec in enumerate(block_specs(variant)):
        x = _block(x, spec, index)
    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "_conv_head", "_bn1")
    x = keras.layers.ReLU(6.0, name="head_relu")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(NUM_CLASSES, name=layer_name("_fc"))(x)
    return keras.Model(inputs, x, name=f"efficientnet_lite{variant}")
