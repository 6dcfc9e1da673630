from pathlib import Path

import numpy as np
import pytest

from ml.augment import Augmenter
from ml.data import TrainingDataError, check_trainable, decode_items, read_manifest, split_items
from ml.sampler import PKSampler


def test_manifest_paths_resolve_relative_to_the_manifest(product_photos):
    root, items = product_photos
    read = read_manifest(root / "manifest.jsonl")
    assert sorted(read) == sorted(items)


def test_bad_images_are_skipped_and_counted(product_photos, tmp_path):
    _, items = product_photos
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    decoded = decode_items([*items[:3], (str(broken), "x"), (str(tmp_path / "gone.jpg"), "x")], 24)
    assert len(decoded) == 3
    assert decoded.skipped == 2
    assert decoded.images.shape == (3, 24, 24, 3) and decoded.images.dtype == np.uint8


def test_bytes_loaders_work_like_paths(product_photos):
    _, items = product_photos
    path, label = items[0]
    from_loader = decode_items([(lambda: Path(path).read_bytes(), label)], 24)
    from_path = decode_items([(path, label)], 24)
    np.testing.assert_array_equal(from_loader.images, from_path.images)


def test_val_labels_follow_the_training_mapping(product_photos):
    _, items = product_photos
    train = decode_items(items, 16)
    val = decode_items(items[::-1], 16, label_names=train.label_names)
    assert [val.label_names[i] for i in val.labels] == [label for _, label in items[::-1]]


def test_photo_split_keeps_every_product_in_training(product_photos):
    _, items = product_photos
    train, val = split_items(items, val_fraction=0.4, seed=1)
    assert val and {label for _, label in train} == {label for _, label in items}
    assert not {p for p, _ in train} & {p for p, _ in val}


def test_product_split_holds_out_whole_products(product_photos):
    _, items = product_photos
    train, val = split_items(items, val_fraction=0.5, split_by="product", seed=1)
    assert {label for _, label in val} and not {label for _, label in train} & {label for _, label in val}


@pytest.mark.parametrize(
    ("items", "message"),
    [([], "empty"), ([("a.jpg", "only"), ("b.jpg", "only")], "at least two products")],
)
def test_untrainable_data_is_rejected(items, message):
    with pytest.raises(TrainingDataError, match=message):
        check_trainable(items)


def test_sampler_gives_p_products_times_k_images():
    labels = np.repeat(np.arange(6), [5, 5, 5, 5, 5, 1])  # product 5 has a single photo
    images = np.zeros((len(labels), 8, 8, 3), np.uint8)
    sampler = PKSampler(images, labels, p=3, k=4, seed=0, steps_per_epoch=20)
    seen = set()
    for i in range(len(sampler)):
        x, y = sampler[i]
        assert x.shape == (12, 8, 8, 3) and y.shape == (12,)
        products, counts = np.unique(y, return_counts=True)
        assert len(products) == 3 and set(counts) == {4}
        seen.update(products.tolist())
    assert 5 in seen  # the single-photo product is sampled too, K times


def test_sampler_is_seeded_and_changes_per_epoch():
    labels = np.repeat(np.arange(10), 4)
    images = np.zeros((len(labels), 8, 8, 3), np.uint8)
    a = PKSampler(images, labels, p=4, k=2, seed=3)
    b = PKSampler(images, labels, p=4, k=2, seed=3)
    np.testing.assert_array_equal(a.batch_indices(0), b.batch_indices(0))
    first = a.batch_indices(0)
    a.on_epoch_end()
    assert not np.array_equal(first, a.batch_indices(0))


def test_augmented_views_of_one_photo_differ():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    aug = Augmenter(32)
    views = [aug(image, np.random.default_rng(s)) for s in range(3)]
    assert all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in views)
    assert not np.array_equal(views[0], views[1])
    np.testing.assert_array_equal(aug(image, np.random.default_rng(5)), aug(image, np.random.default_rng(5)))
