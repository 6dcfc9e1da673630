"""Cached activations: the photo itself first, then augmented views; P x K batches over them."""

from __future__ import annotations

import numpy as np

from ml.augment import Augmenter
from ml.backbone_split import split_embedding_model
from ml.feature_cache import CachedPKSampler, activations, cache_views, views_per_image
from ml.model import build_embedding_model

SIZE = 32


def test_products_with_few_photos_get_more_views():
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2])
    per = views_per_image(labels, views=2, min_views_per_product=8)
    assert per.tolist() == [2] * 8 + [8] + [4, 4]
    assert all(per[labels == c].sum() >= 8 for c in (0, 1, 2))


def test_a_cap_on_views_shrinks_every_image_alike_but_keeps_a_pair_each():
    labels = np.array([0, 0, 0, 0, 1, 2, 3, 4])  # a product with four photos, four with one
    full = views_per_image(labels, views=2, min_views_per_product=8)
    assert full.tolist() == [2, 2, 2, 2, 8, 8, 8, 8] and full.sum() == 40
    capped = views_per_image(labels, views=2, min_views_per_product=8, max_total=20)
    assert capped.tolist() == [2, 2, 2, 2, 3, 3, 3, 3] and capped.sum() == 20
    # More photos than the cap allows two each: two each all the same (a positive pair per product).
    assert views_per_image(labels, views=2, min_views_per_product=8, max_total=4).tolist() == [2] * 8
    assert views_per_image(labels, views=2, min_views_per_product=8, max_total=1000).tolist() == full.tolist()


def test_cached_views_start_with_the_photo_itself_and_are_reproducible():
    # ImageNet weights (from the installed package): randomly initialised activations are about 1e-11,
    # below what float16 keeps, and would all cache as zeros.
    model = build_embedding_model(
        backbone="efficientnet_lite0", weights="imagenet", image_size=SIZE, embedding_dim=8, pooling="avg"
    )
    bottom, _ = split_embedding_model(model, 2)
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1])
    per = np.array([1, 3, 2], dtype=np.int32)
    first = cache_views(bottom, images, labels, per, augmenter=Augmenter(SIZE), seed=5)
    again = cache_views(bottom, images, labels, per, augmenter=Augmenter(SIZE), seed=5)
    assert len(first) == 6 and first.features.dtype == np.float16
    assert sorted(zip(first.source.tolist(), first.view.tolist(), strict=True)) == [
        (0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)
    ]  # fmt: skip
    np.testing.assert_array_equal(first.features, again.features)
    plain = activations(bottom, images)
    originals = first.view == 0
    np.testing.assert_allclose(first.features[originals], plain[first.source[originals]], atol=1e-2)
    assert not np.allclose(first.features[first.view == 1], plain[first.source[first.view == 1]], atol=1e-2)


def test_pk_batches_hold_k_views_of_p_products_and_repeat_per_seed():
    from ml.feature_cache import CachedViews

    rng = np.random.default_rng(0)
    cache = CachedViews(
        features=rng.normal(size=(40, 2, 3, 4)).astype(np.float16),
        source=np.repeat(np.arange(20), 2).astype(np.int32),
        labels=np.repeat(np.arange(5), 8).astype(np.int32),
        view=np.tile([0, 1], 20).astype(np.int16),
    )
    sampler = CachedPKSampler(cache, p=3, k=4, steps_per_epoch=None, seed=1)
    x, y = sampler[0]
    assert x.shape == (12, 2, 3, 4) and x.dtype == np.float32
    assert sorted(np.bincount(y)[np.bincount(y) > 0].tolist()) == [4, 4, 4]
    x2, y2 = CachedPKSampler(cache, p=3, k=4, steps_per_epoch=None, seed=1)[0]
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def _photos_cache(products: int, photos_each: int):
    """A cache of one view (the photo itself) of ``photos_each`` photos of each product."""
    from ml.feature_cache import CachedViews

    n = products * photos_each
    return CachedViews(
        features=np.zeros((n, 1, 1, 2), np.float16),
        source=np.arange(n, dtype=np.int32),
        labels=np.repeat(np.arange(products), photos_each).astype(np.int32),
        view=np.zeros(n, np.int16),
    )


def test_hard_negatives_share_batches_with_their_product():
    cache = _photos_cache(20, 4)
    plain = CachedPKSampler(cache, p=4, k=2, steps_per_epoch=200, seed=3)
    guided = CachedPKSampler(cache, p=4, k=2, steps_per_epoch=200, seed=3, companions={0: [7], 7: [0]})

    def together(sampler) -> int:
        return sum({0, 7} <= set(sampler[i][1].tolist()) for i in range(len(sampler)))

    # Product 0 drawn with 7 in a batch: by chance a few times in 200, guided whenever either is drawn.
    assert together(guided) > 3 * max(1, together(plain))


def test_left_out_products_are_never_drawn_and_do_not_count_towards_the_steps():
    cache = _photos_cache(10, 4)
    sampler = CachedPKSampler(cache, p=2, k=2, steps_per_epoch=None, seed=0, exclude=np.array([3, 7]))
    drawn = set(np.concatenate([sampler[i][1] for i in range(50)]).tolist())
    assert drawn == set(range(10)) - {3, 7}
    assert len(sampler) == 32 // 4  # the 32 photos of the 8 products left, P x K = 4 a batch
