import json

import keras
import numpy as np
import pytest

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


@pytest.mark.parametrize("loss", ["multi_similarity", "proxy_anchor"])
def test_train_writes_a_loadable_model_and_a_summary(product_photos, tmp_path, loss):
    _, items = product_photos
    val = [items[i] for i in (0, 5, 10, 15)]
    train_items = [it for it in items if it not in val]
    config = TrainConfig(
        weights=None,
        loss=loss,
        pooling="avg",
        image_size=SIZE,
        embedding_dim=8,
        head_epochs=1,
        epochs=1,
        steps_per_epoch=2,
        batch_p=4,
        batch_k=2,
        unfreeze_layers=10,
        output_dir=str(tmp_path / "run"),
    )
    result = train(config, train_items, val, progress=False)
    assert len(result.history) == 2 and {h["phase"] for h in result.history} == {"head", "finetune"}
    assert 0.0 <= result.best_val_recall_at_1 <= 1.0
    assert result.num_products == 4 and result.num_train_images == len(train_items)
    model = keras.saving.load_model(result.model_path)
    out = np.asarray(model.predict_on_batch(np.zeros((2, SIZE, SIZE, 3), "float32")))
    # The saved model is the embedding model alone, also when training added class proxies.
    assert out.shape == (2, 8)
    assert all("proxies" not in layer.name for layer in model.layers)
    saved = json.loads((tmp_path / "run" / "train_result.json").read_text())
    assert saved["model_path"] == result.model_path


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
