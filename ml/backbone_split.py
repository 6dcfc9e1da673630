"""Splitting an embedding model in two at a block boundary: a frozen bottom whose activations can be
computed once and cached, and a trainable top that maps those activations to embeddings.

Both halves share their layers with the embedding model, so training the top trains the model that is
exported and served; nothing is copied back. A block boundary is the output of an inverted-residual
block: no skip connection crosses it, so the top is a plain function of the cached tensor.
"""

from __future__ import annotations

import re

import keras

from ml.model import BACKBONE_LAYER, get_backbone

# The layer that ends block i, by backbone family: EfficientNet-Lite (ml/efficientnet_lite.py) ends a
# block in its residual Add, or in the projection's BatchNorm when the block has no residual; Keras'
# MobileNetV2 likewise ("expanded_conv" is its block 0).
_BLOCK_END = re.compile(
    r"^(?:blocks_(\d+)_(?:add|bn2)|block_(\d+)_(?:add|project_BN)|expanded_conv_project_BN)$"
)


class SplitError(ValueError):
    """The backbone has no block structure this module knows, or too few blocks for the request."""


def block_ends(base: keras.Model) -> list[str]:
    """The name of the layer that ends each block of ``base``, in order (one per block)."""
    ends: dict[int, str] = {}
    for layer in base.layers:
        match = _BLOCK_END.match(layer.name)
        if match is None:
            continue
        index = int(match.group(1) or match.group(2) or 0)
        # A block with a residual has both its projection BatchNorm and its Add; the Add comes later.
        ends[index] = layer.name
    if not ends:
        raise SplitError(f"backbone {base.name!r} has no inverted-residual blocks to split at")
    return [ends[i] for i in sorted(ends)]


def count_blocks(model: keras.Model) -> int:
    return len(block_ends(get_backbone(model)))


def split_embedding_model(model: keras.Model, trainable_blocks: int) -> tuple[keras.Model, keras.Model]:
    """``(bottom, top)``: ``bottom`` maps 0..255 pixels to the activations after the last frozen block,
    ``top`` maps those activations through the last ``trainable_blocks`` blocks, the backbone's head,
    pooling, projection and normalisation to the embedding. ``trainable_blocks=0`` leaves only the
    backbone's head convolution and the embedding head trainable."""
    base = get_backbone(model)
    ends = block_ends(base)
    if not 0 <= trainable_blocks < len(ends):
        raise SplitError(
            f"trainable_blocks must be between 0 and {len(ends) - 1} for {base.name} ({len(ends)} blocks), "
            f"got {trainable_blocks}"
        )
    cut = base.get_layer(ends[len(ends) - 1 - trainable_blocks]).output
    base_bottom = keras.Model(base.input, cut, name="backbone_bottom")
    base_top = keras.Model(cut, base.output, name="backbone_top")

    pixels = keras.Input(shape=model.input_shape[1:], name="images")
    x = pixels
    after_backbone = False
    top_layers = []
    for layer in model.layers[1:]:  # [0] is the input
        if layer.name == BACKBONE_LAYER:
            after_backbone = True
        elif not after_backbone:
            x = layer(x)  # the input scaling
        else:
            top_layers.append(layer)
    bottom = keras.Model(pixels, base_bottom(x), name="bottom")

    features = keras.Input(shape=base_bottom.output_shape[1:], name="activations")
    y = base_top(features)
    for layer in top_layers:
        y = layer(y)
    top = keras.Model(features, y, name="top")
    return bottom, top


def make_top_trainable(top: keras.Model) -> int:
    """Train every layer of the top except BatchNorm, whose statistics stay ImageNet's (P x K batches of
    a few products would skew them); return how many layers with weights train."""
    count = 0
    for layer in _leaf_layers(top):
        trainable = not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += bool(trainable and layer.weights)
    return count


def _leaf_layers(model: keras.Model) -> list[keras.layers.Layer]:
    leaves = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layer.trainable = True  # a nested model's flag gates its layers' own
            leaves.extend(_leaf_layers(layer))
        else:
            leaves.append(layer)
    return leaves
