"""Starting the projection head where the pretrained features already are.

A randomly initialised projection (pooled features -> 128-d) throws away much of what the pretrained
backbone knows. A long training run recovers that and more, but a catalog with one photo per product
gives a run a handful of steps, and its result stays close to where the head started: on the Grocery
Store test photos against the 81 catalog images, the pooled features score Recall@1 0.313 and a model
trained from a random head on those 81 images 0.119 (2026-11-30, `bench.one_photo`).

So the head can start as the best rank-``d`` approximation of the pooled features: the top right
singular vectors of the (uncentred) feature matrix. Uncentred, because the model compares directions
(cosine) of non-negative features, as the bootstrap model does; with those vectors as the kernel,
the projected features keep the dot products between photos as well as any ``d`` dimensions can.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ml.model import HEAD_LAYER

# Enough rows to pin down the top singular vectors of a 1,280-d feature matrix; more only costs time.
MAX_ROWS = 4096


def pooled_features(top: keras.Model, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """What the head sees: ``top``'s output just before its projection layer, for ``inputs``."""
    # The head layer is shared with the whole embedding model, so its ``input`` is that model's tensor;
    # the layers before it are called again on a new input instead.
    x_in = keras.Input(shape=tuple(top.input_shape[1:]))
    x = x_in
    for layer in top.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.name == HEAD_LAYER:
            break
        x = layer(x)
    before_head = keras.Model(x_in, x)
    return np.asarray(before_head.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float64)


def principal_kernel(features: np.ndarray, dim: int) -> np.ndarray:
    """[D, k] kernel: the top ``k = min(dim, N, D)`` right singular vectors of ``features`` ([N, D],
    rows are samples), each oriented so that the mean feature projects positively (a deterministic
    sign). Fewer than ``dim`` columns when the rows cannot determine more."""
    if features.ndim != 2 or len(features) == 0:
        raise ValueError("features must be a non-empty [N, D] matrix")
    _, _, vt = np.linalg.svd(features, full_matrices=False)
    kernel = vt[:dim].T
    signs = np.sign(features.mean(axis=0) @ kernel)
    return (kernel * np.where(signs == 0, 1.0, signs)).astype(np.float32)


def init_head_from_features(top: keras.Model, inputs: Any, *, seed: int = 0) -> int:
    """Set ``top``'s projection kernel from the principal directions of its pooled features on
    ``inputs`` (at most MAX_ROWS of them, sampled); return how many rows were used."""
    head = top.get_layer(HEAD_LAYER)
    rows = np.arange(len(inputs))
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=MAX_ROWS, replace=False))
    features = pooled_features(top, inputs[rows])
    values = np.array(keras.ops.convert_to_numpy(head.kernel), dtype=np.float32)
    principal = principal_kernel(features, values.shape[1])
    take = principal.shape[1]
    # The principal columns at the random columns' scale; any the rows could not determine stay random
    # but small, so they barely move the start and still differ from each other when training begins.
    scale = float(np.linalg.norm(values, axis=0).mean()) or 1.0
    values[:, :take] = principal * scale
    values[:, take:] *= 1e-3
    head.kernel.assign(values)
    return len(rows)
