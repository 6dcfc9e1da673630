"""The embedding model: 0..255 pixels in, L2-normalised float32 embeddings out.

Layout: ``input -> backbone scaling -> backbone (BatchNorm always in inference mode) -> pooling
-> [projection head] -> L2 normalisation``; the pretrained model may instead carry a fitted compact
projection: ``pooling -> L2 normalisation -> compact (fixed PCA) -> L2 normalisation``. Everything a server needs lives inside the model.
"""

from __future__ import annotations

import os
from typing import Any

import keras
from keras import ops

from ml.backbones import DEFAULT_BACKBONE, build_backbone, input_scaling_layer
from ml.projection import Projection

BACKBONE_LAYER = "backbone"
HEAD_LAYER = "projection"
COMPACT_LAYER = "compact"


@keras.saving.register_keras_serializable(package="lookalike")
class GeMPooling(keras.layers.Layer):
    """Generalised-mean pooling over H and W: (mean x^p)^(1/p).

    p=1 is average pooling and p->inf max pooling; p=3 is the usual retrieval choice because it
    weights the few strongly activated regions (the product) above the background shelf.
    """

    def __init__(self, p: float = 3.0, trainable_p: bool = False, eps: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.initial_p = float(p)
        self.trainable_p = bool(trainable_p)
        self.eps = float(eps)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.p = self.add_weight(
            name="p",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_p),
            trainable=self.trainable_p,
        )

    def call(self, inputs: Any) -> Any:
        x = ops.clip(ops.cast(inputs, "float32"), self.eps, 1e6)
        pooled = ops.mean(ops.power(x, self.p), axis=(1, 2))
        return ops.power(pooled, 1.0 / self.p)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"p": self.initial_p, "trainable_p": self.trainable_p, "eps": self.eps})
        return config


def build_embedding_model(
    *,
    backbone: str = DEFAULT_BACKBONE,
    weights: str | os.PathLike[str] | None = None,
    image_size: int = 224,
    embedding_dim: int = 128,
    pooling: str = "gem",
    head: bool = True,
    projection: Projection | None = None,
) -> keras.Model:
    """Build the embedding model (see docs/CONTRACTS.md).

    ``head=False`` is the bootstrap model: pooled backbone features, L2-normalised, usable with no
    training at all. With ``projection`` (ml/projection.py, fitted on the shop's catalog) it emits
    the compact vector instead: the fixed, non-trainable PCA map of those normalised features,
    normalised again. The backbone starts frozen; see :func:`unfreeze_top_layers`.
    """
    if pooling not in ("gem", "avg"):
        raise ValueError(f"pooling must be 'gem' or 'avg', not {pooling!r}")
    if embedding_dim < 1:
        raise ValueError("embedding_dim must be >= 1")
    if projection is not None and head:
        raise ValueError("a fitted projection replaces the trained head: pass head=False with it")
    base = build_backbone(backbone, weights, image_size)
    # A nested model gets a stable name so unfreeze/freeze helpers and export can find it.
    base.name = BACKBONE_LAYER
    base.trainable = False

    inputs = keras.Input(shape=(image_size, image_size, 3), dtype="float32", name="images")
    x = inputs
    scaling = input_scaling_layer(backbone)
    if scaling is not None:
        x = scaling(x)
    # training=False is recorded in the graph: BatchNorm keeps its ImageNet statistics even while
    # the backbone is fine-tuned, since P x K batches of a few products would skew them.
    x = base(x, training=False)
    if pooling == "gem":
        x = GeMPooling(name="gem_pooling")(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pooling")(x)
    if head:
        # No bias: a shared offset added before L2 normalisation only pulls all embeddings together.
        x = keras.layers.Dense(embedding_dim, use_bias=False, name=HEAD_LAYER)(x)
    if projection is not None:
        x = _compact(x, projection)
    outputs = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(x)
    name = f"lookalike_{backbone}_{'embed' + str(embedding_dim) if head else 'bootstrap'}"
    return keras.Model(inputs, outputs, name=name)


def _compact(x: Any, projection: Projection) -> Any:
    if int(x.shape[-1]) != projection.in_dim:
        raise ValueError(
            f"projection expects {projection.in_dim}-d features, the backbone pools to {x.shape[-1]}"
        )
    # Normalised first: the projection was fitted on normalised features (what the raw model emits),
    # and a centred projection's bias only means the same thing at that scale.
    x = keras.layers.UnitNormalization(axis=-1, name="l2_prenormalize")(x)
    layer = keras.layers.Dense(projection.out_dim, name=COMPACT_LAYER, trainable=False)
    x = layer(x)
    layer.set_weights([projection.matrix, projection.bias])
    return x


def with_projection(model: keras.Model, projection: Projection) -> keras.Model:
    """The pretrained (``head=False``) ``model`` with ``projection`` built in, sharing its layers and
    weights: what ``build_embedding_model(..., head=False, projection=...)`` builds, without loading
    the backbone's weights a second time (the bootstrap embeds the catalog with the raw model first)."""
    final = model.get_layer("l2_normalize")
    pooled = final.input
    if any(layer.name in (HEAD_LAYER, COMPACT_LAYER) for layer in model.layers):
        raise ValueError("only the raw pretrained model (no head, no projection) takes a projection")
    outputs = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(_compact(pooled, projection))
    return keras.Model(model.input, outputs, name=model.name)


def get_backbone(model: keras.Model) -> keras.Model:
    return model.get_layer(BACKBONE_LAYER)


def freeze_backbone(model: keras.Model) -> None:
    get_backbone(model).trainable = False


def unfreeze_top_layers(model: keras.Model, n_layers: int) -> int:
    """Make the top ``n_layers`` of the backbone trainable (BatchNorm excepted); return how many are.

    BatchNorm stays frozen (weights and statistics) because its moving averages would otherwise be
    refit on tiny P x K batches. Recompile the model after calling this.
    """
    base = get_backbone(model)
    base.trainable = True
    layers = base.layers
    cut = max(0, len(layers) - max(0, n_layers))
    count = 0
    for i, layer in enumerate(layers):
        trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        count += bool(trainable and layer.weights)
    return count
