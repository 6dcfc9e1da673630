import json

import keras
import numpy as np
import pytest

from ml.calibration import SOURCE_VIEWS
from ml.data import decode_items
from ml.losses import MultiSimilarityLoss, get_loss
from ml.model import build_embedding_model
from ml.sampler import PKSampler
from ml.train import TrainConfig, main, train

SIZE = 32


def test_a_few_training_steps_lower_the_loss(product_photos):
    _, items = product_photos
    keras.utils.set_random_seed(0)
    data = decode_items(items, SIZE)
    # Random-init features are tiny (about 1e-11), below GeM's clipping floor, so tests pool by average.
    model = build_embedding_model(weights=None, image_size=SIZE, embedding_dim=16, pooling="avg")
    loss = MultiSimilarityLoss()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    sampler = PKSampler(data.images, data.labels, p=4, k=4, seed=0, steps_per_epoch=1)
    x, y = sampler[0]
    before = float(keras.ops.convert_to_numpy(loss(y, model.predict_on_batch(x))))
    model.fit(x, y, batch_size=len(y), epochs=10, verbose=0, shuffle=False)
    after = float(keras.ops.convert_to_numpy(loss(y, model.predict_on_batch(x))))
    assert after < before


def _config(tmp_path, **overrides) -> TrainConfig:
    # Cached mode keeps activations as float16, so it trains on a backbone with its ImageNet weights
    # (randomly initialised activations are about 1e-11, below float16); the installed package has them.
    cached = overrides.get("mode", "cached") == "cached"
    values = dict(
        backbone="efficientnet_lite0" if cached else "mobilenet_v2_035",
        weights="imagenet" if cached else None,
        pooling="avg",
        # 64 px for the pretrained backbone: at 32 px its head sees 1 x 1 activations, often all zero.
        image_size=64 if cached else SIZE,
        embedding_dim=8,
        head_epochs=1,
        epochs=1,
        steps_per_epoch=2,
        batch_p=4,
        batch_k=2,
        unfreeze_layers=10,
        trainable_blocks=2,
        cache_views=2,
        min_views_per_product=4,
        output_dir=str(tmp_path / "run"),
    )
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize(
    ("mode", "loss", "phases"),
    [
        ("finetune", "multi_similarity", {"head", "finetune"}),
        ("finetune", "proxy_anchor", {"head", "finetune"}),
        ("cached", "multi_similarity", {"top"}),
        ("cached", "proxy_anchor", {"top"}),
    ],
)
def test_train_writes_a_loadable_model_and_a_summary(product_photos, tmp_path, mode, loss, phases):
    _, items = product_photos
    val = [items[i] for i in (0, 5, 10, 15)]
    train_items = [it for it in items if it not in val]
    config = _config(tmp_path, mode=mode, loss=loss, epochs=1 if mode == "finetune" else 2)
    result = train(config, train_items, val, progress=False)
    assert {h["phase"] for h in result.history} == phases
    assert 0.0 <= result.best_val_recall_at_1 <= 1.0
    assert result.num_products == 4 and result.num_train_images == len(train_items)
    # The trained model and the untrained backbone are scored on the same validation photos.
    assert result.metrics["num_queries"] == result.baseline["num_queries"] == 4
    assert 0.0 <= result.metrics["recall@1"] <= 1.0 and 0.0 <= result.baseline["recall@1"] <= 1.0
    model = keras.saving.load_model(result.model_path)
    size = config.image_size
    out = np.asarray(model.predict_on_batch(np.zeros((2, size, size, 3), "float32")))
    # The saved model is the embedding model alone, also when training added class proxies.
    assert out.shape == (2, 8)
    assert all("proxies" not in layer.name for layer in model.layers)
    saved = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert saved["model_path"] == result.model_path and "held_out" not in saved


def test_cached_training_moves_only_the_top(product_photos, tmp_path):
    from ml.backbone_split import split_embedding_model

    _, items = product_photos
    config = _config(tmp_path, epochs=2)
    untouched = build_embedding_model(
        backbone=config.backbone,
        weights=config.weights,
        image_size=config.image_size,
        embedding_dim=8,
        pooling="avg",
    )
    result = train(config, items, [items[0], items[5]], progress=False)
    trained = keras.saving.load_model(result.model_path)
    bottom_before, _ = split_embedding_model(untouched, config.trainable_blocks)
    bottom_after, _ = split_embedding_model(trained, config.trainable_blocks)
    size = config.image_size
    pixels = np.random.default_rng(1).integers(0, 256, (2, size, size, 3)).astype("float32")
    # Same seed, same random initialisation: the frozen bottom computes exactly what it did before.
    np.testing.assert_allclose(
        bottom_before.predict_on_batch(pixels), bottom_after.predict_on_batch(pixels), atol=1e-6
    )


def test_with_no_validation_given_look_alike_groups_are_held_out(product_photos, tmp_path):
    _, items = product_photos  # 5 photos of each product: groups can be held out
    result = train(_config(tmp_path, epochs=1), items, None, progress=False, val_fraction=0.4)
    assert result.validation == "held-out groups of look-alike photos"
    held = result.held_out
    assert held is not None and 0 < len(held.query_sources) < len(items)
    assert result.num_train_images + result.num_val_images == len(items)
    # Every product keeps training photos, and the held-out photos are not in the gallery.
    kept = {items[i][1] for i in range(len(items)) if i not in set(held.query_sources)}
    assert kept == {label for _, label in items}
    assert len(held.gallery_labels) == len(items) - len(held.query_sources)


def test_a_catalog_with_one_photo_per_product_trains_and_validates_on_views(product_photos, tmp_path, capsys):
    _, items = product_photos
    singles = [items[i] for i in (0, 5, 10, 15)]  # one photo of each product
    result = train(_config(tmp_path, epochs=2), singles, None, progress=True)
    assert result.validation == "augmented views of the catalog photos"
    # Its thresholds are fitted on views too, and say so: answers under them never say "no match".
    assert result.held_out is not None and result.held_out.calibration_source == SOURCE_VIEWS
    # Its run is a few steps, so the head starts from the features' principal directions (ml/head_init.py).
    assert "projection head started from the principal directions of" in capsys.readouterr().out
    assert result.num_train_images == 4 and result.num_val_images == 4
    assert result.best_epoch >= 1 and not np.isnan(result.metrics["recall@1"])
    saved = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert saved["validation"] == result.validation


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_cli_rejects_a_missing_weights_file(product_photos, tmp_path, capsys):
    root, _ = product_photos
    argv = [
        "--manifest",
        str(root / "manifest.jsonl"),
        "--output",
        str(tmp_path),
        "--weights",
        str(tmp_path / "no.h5"),
    ]
    assert "weights file not found" in _cli_error(capsys, argv)


def test_cli_rejects_a_single_product(product_photos, tmp_path, capsys):
    root, _ = product_photos
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"sku": "a", "images": [str(root / "red-circle_0.jpg")]}) + "\n")
    assert "at least two products" in _cli_error(capsys, ["--manifest", str(one), "--output", str(tmp_path)])


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_cli_rejects_an_empty_manifest(tmp_path, capsys, content):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    assert "empty" in _cli_error(capsys, ["--manifest", str(empty), "--output", str(tmp_path)])


def test_proxy_training_steps_lower_the_loss(product_photos):
    from ml.proxies import PROXY_LAYER, build_training_model, class_centroids

    _, items = product_photos
    keras.utils.set_random_seed(0)
    data = decode_items(items, SIZE)
    model = build_embedding_model(weights=None, image_size=SIZE, embedding_dim=16, pooling="avg")
    trainer = build_training_model(model, num_classes=data.num_products)
    centroids = class_centroids(
        np.asarray(model.predict_on_batch(data.images.astype("float32"))), data.labels, 4
    )
    trainer.get_layer(PROXY_LAYER).set_proxies(centroids)
    loss = get_loss("proxy_anchor")
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    x, y = data.images.astype("float32"), data.labels
    before = float(keras.ops.convert_to_numpy(loss(y, trainer.predict_on_batch(x))))
    trainer.fit(x, y, batch_size=len(y), epochs=10, verbose=0, shuffle=False)
    after = float(keras.ops.convert_to_numpy(loss(y, trainer.predict_on_batch(x))))
    assert after < before
    # Training moved the shared embedding weights, not only the proxies.
    assert trainer.get_layer(model.name) is model


@pytest.fixture(scope="module")
def twelve_products(tmp_path_factory):
    """12 products (three colours x four shapes), 4 photos each: enough to leave some out."""
    from tests.ml.conftest import draw_product

    root = tmp_path_factory.mktemp("twelve")
    rng = np.random.default_rng(3)
    items = []
    for c, colour in enumerate(((220, 30, 30), (30, 180, 40), (30, 60, 220))):
        for shape in ("ellipse", "rectangle", "triangle", "bar"):
            for i in range(4):
                path = root / f"c{c}-{shape}-{i}.jpg"
                draw_product(colour, shape, rng).save(path, quality=90)
                items.append((str(path), f"c{c}-{shape}"))
    return items


def test_thresholds_are_fitted_on_products_a_second_training_never_saw(twelve_products, tmp_path):
    items = twelve_products
    result = train(_config(tmp_path, epochs=2), items, None, progress=False, val_fraction=0.3)
    held = result.held_out
    assert held is not None and held.unseen is not None
    assert held.unseen_products == 3  # a fifth of 12 rounds to 2; at least 3
    assert held.calibration_source == "3 products left out of a second training"
    scored = held.scored()
    # Every photo of the three left-out products (4 each, held out or not) asks as a product not sold;
    # the in-catalog side is the other products' held-out photos.
    assert len(scored["out_score"]) == 12
    assert 0 < len(scored["in_score"]) < len(held.query_labels)
    assert result.to_json()["timings"]["calibration_train_s"] > 0


def test_without_a_share_to_leave_out_the_own_product_stand_in_fits_the_thresholds(twelve_products, tmp_path):
    items = twelve_products
    config = _config(tmp_path, epochs=1, calibration_unseen=0.0)
    held = train(config, items, None, progress=False, val_fraction=0.3).held_out
    assert held is not None and held.unseen is None
    assert held.calibration_source.startswith("held-out photos")
    assert len(held.scored()["out_score"]) == len(held.query_labels)
