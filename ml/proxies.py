"""Class proxies for proxy-based losses: one learnable unit vector per product.

Proxy losses (``ml.losses.ProxyAnchorLoss``) compare each embedding with every product's proxy
instead of with the other images in the batch, so each step sees all products at once. On a small
CPU budget this converges in far fewer steps than pair losses, which only see the P products drawn
into a batch. The proxies exist only while training: ``build_training_model`` wraps the embedding
model, and the embedding model alone is saved and served.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

PROXY_LAYER = "proxies"


@keras.saving.register_keras_serializable(package="lookalike")
class ProxySimilarity(keras.layers.Layer):
    """Cosine similarity of each (already L2-normalised) embedding to each proxy: [B, D] -> [B, C].

    The proxies are normalised in ``call``, so only their direction matters. ``init_norm`` sets the
    length they start at: Adam moves each coordinate by about the learning rate whatever its scale,
    so shorter stored vectors turn faster. Starting at 0.1 gives the proxies roughly ten times the
    backbone's step, the "proxies learn faster" setting of the Proxy-Anchor paper, without a second
    optimizer; the effect fades as they grow, which anneals it.
    """

    def __init__(self, num_classes: int, init_norm: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError("proxies need at least two classes")
        self.num_classes = int(num_classes)
        self.init_norm = float(init_norm)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        dim = input_shape[-1]
        if dim is None:
            raise ValueError("the proxies need the embedding size known when the model is built")
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_classes, int(dim)),
            initializer=keras.initializers.RandomNormal(stddev=self.init_norm / np.sqrt(dim)),
            trainable=True,
        )

    def call(self, inputs: Any) -> Any:
        proxies = self.kernel / ops.maximum(ops.norm(self.kernel, axis=1, keepdims=True), 1e-12)
        return ops.matmul(ops.cast(inputs, "float32"), ops.transpose(proxies))

    def set_proxies(self, directions: np.ndarray) -> None:
        """Start the proxies at the given directions (e.g. the class centroids), at ``init_norm``."""
        directions = np.asarray(directions, dtype=np.float32)
        norms = np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
        self.kernel.assign(directions / norms * self.init_norm)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.num_classes)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"num_classes": self.num_classes, "init_norm": self.init_norm})
        return config


def build_training_model(embedding_model: keras.Model, num_classes: int) -> keras.Model:
    """The embedding model followed by the proxy layer; shares every weight with ``embedding_model``."""
    inputs = keras.Input(shape=embedding_model.input_shape[1:], dtype="float32", name="images")
    similarities = ProxySimilarity(num_classes, name=PROXY_LAYER)(embedding_model(inputs))
    return keras.Model(inputs, similarities, name=f"{embedding_model.name}_with_proxies")


def class_centroids(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean embedding per class [C, D]; a class with no example gets a random direction."""
    dim = embeddings.shape[1]
    out = np.random.default_rng(0).normal(size=(num_classes, dim)).astype(np.float32)
    for c in np.unique(labels):
        out[int(c)] = embeddings[labels == c].mean(axis=0)
    return out
