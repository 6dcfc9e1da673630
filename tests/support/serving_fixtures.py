"""Session fixtures for export and serving tests: ONE exported model shared by every test.

Export plus a SavedModel load costs seconds, so the tiny model is built, saved as ``.keras``,
exported and served once per test session. Imported into ``tests/ml/conftest.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TINY_SIZE = 32
TINY_DIM = 16
MODEL_NAME = "lookalike"


def build_tiny_model() -> Any:
    """A small real embedding model with the contract's shape: 0..255 pixels in, unit vectors out."""
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(TINY_SIZE, TINY_SIZE, 3), dtype="float32", name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(TINY_DIM)(x)
    outputs = keras.layers.UnitNormalization(axis=-1)(x)
    # The ml.model naming scheme, so export reads "tiny" as the backbone.
    return keras.Model(inputs, outputs, name=f"lookalike_tiny_embed{TINY_DIM}")


def random_images(n: int, size: int = TINY_SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def free_port() -> int:
    """A port nothing listens on (bound then released; fine for a test that expects refusal)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_keras_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keras") / "tiny.keras"
    build_tiny_model().save(path)
    return path


@pytest.fixture(scope="session")
def tiny_keras_model(tiny_keras_path: Path) -> Any:
    from ml.export import load_keras_model

    return load_keras_model(tiny_keras_path)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def exported(models_dir: Path, tiny_keras_path: Path) -> Any:
    """The tiny model exported from its ``.keras`` file as ``<models_dir>/lookalike/1``."""
    from ml.export import export_saved_model

    return export_saved_model(tiny_keras_path, models_dir, MODEL_NAME, 1)


@pytest.fixture(scope="session")
def local_embedder(exported: Any) -> Any:
    from ml.serving import LocalEmbedder

    return LocalEmbedder(exported.path)


@pytest.fixture(scope="session")
def tflite_embedder(exported: Any) -> Any:
    from ml.serving import TFLiteEmbedder

    return TFLiteEmbedder(exported.path)


@pytest.fixture(scope="session")
def _stub_server(exported: Any, models_dir: Path) -> Iterator[Any]:
    from tests.support.tf_serving_stub import TFServingStub

    with TFServingStub(models_dir) as server:
        yield server


@pytest.fixture
def stub_server(_stub_server: Any) -> Iterator[Any]:
    """The shared in-process TF Serving stub, with any faults a test switched on reset afterwards."""
    from tests.support.tf_serving_stub import Faults

    yield _stub_server
    _stub_server.faults.__dict__.update(Faults().__dict__)


@pytest.fixture
def tfs_embedder(stub_server: Any) -> Iterator[Any]:
    from ml.serving import TFServingEmbedder

    embedder = TFServingEmbedder(stub_server.target, MODEL_NAME, 1, timeout_s=5.0)
    yield embedder
    embedder.close()
