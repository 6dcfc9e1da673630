"""Splitting the embedding model at a block boundary: bottom then top is the whole model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ml.backbone_split import SplitError, block_ends, count_blocks, make_top_trainable, split_embedding_model
from ml.model import build_embedding_model, get_backbone

SIZE = 64


@pytest.mark.parametrize(("backbone", "blocks"), [("mobilenet_v2_035", 17), ("efficientnet_lite0", 16)])
@pytest.mark.parametrize("trainable_blocks", [0, 3])
def test_bottom_then_top_is_the_whole_model(backbone, blocks, trainable_blocks):
    keras.utils.set_random_seed(0)
    model = build_embedding_model(
        backbone=backbone, weights=None, image_size=SIZE, embedding_dim=8, pooling="avg"
    )
    assert count_blocks(model) == blocks
    bottom, top = split_embedding_model(model, trainable_blocks)
    pixels = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype("float32")
    whole = np.asarray(model.predict_on_batch(pixels))
    halves = np.asarray(top.predict_on_batch(bottom.predict_on_batch(pixels)))
    np.testing.assert_allclose(halves, whole, atol=1e-5)


def test_only_the_top_trains_and_its_batchnorm_stays_frozen():
    model = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=SIZE, embedding_dim=8, pooling="avg"
    )
    bottom, top = split_embedding_model(model, 2)
    assert make_top_trainable(top) > 0
    top_ids = {id(w) for w in top.trainable_weights}
    assert top_ids and not top_ids & {id(w) for w in bottom.weights}
    ends = block_ends(get_backbone(model))
    assert ends[-1] == "block_16_project_BN"
    assert all("_BN" not in w.path and "bn" not in w.path.split("/")[-2] for w in top.trainable_weights)
    # The projection head trains with the top; the shared layers are the embedding model's own.
    assert any("projection" in w.path for w in top.trainable_weights)


def test_asking_for_more_blocks_than_the_backbone_has_is_a_clear_error():
    model = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=SIZE, embedding_dim=8, pooling="avg"
    )
    with pytest.raises(SplitError, match="between 0 and 16"):
        split_embedding_model(model, 17)
