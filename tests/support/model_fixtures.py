"""Shared fixtures (a pytest plugin, see tests/conftest.py): a real exported model, a real embedded vector
store, the active model row, and "send tasks to the machine's Redis" for worker tests.

One definition for every suite, so the tiny model is exported once per session.

The model is the platform's own bootstrap model (MobileNetV2-0.35 features, random weights, 32 px)
exported once per session through ml.export; each test gets a fresh Qdrant Edge folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from config.celery import app

SEARCH_MODEL_VERSION = 7


@pytest.fixture(scope="session")
def exported_bootstrap(tmp_path_factory: pytest.TempPathFactory):
    import keras

    from ml.export import export_saved_model
    from ml.model import build_embedding_model

    keras.utils.set_random_seed(3)
    model = build_embedding_model(
        backbone="mobilenet_v2_035", weights=None, image_size=32, head=False, pooling="avg"
    )
    return export_saved_model(
        model, tmp_path_factory.mktemp("search-models"), "lookalike", SEARCH_MODEL_VERSION
    )


@pytest.fixture
def vector_store_path(settings, tmp_path: Path):
    from search import vector_store as store_handle

    store_handle.reset_vector_store()
    settings.VECTOR_STORE_PATH = tmp_path / "qdrant"
    yield settings.VECTOR_STORE_PATH
    store_handle.reset_vector_store()


def activate_exported(exported):
    """Register the exported tiny model as the active version, with its (empty) collection."""
    from search.models import ModelKind
    from search.services.model_versions import model_activate, model_version_register
    from search.vector_store import vector_store

    record = model_version_register(
        version=SEARCH_MODEL_VERSION,
        kind=ModelKind.BOOTSTRAP,
        backbone="mobilenet_v2_035",
        embedding_dim=exported.embedding_dim,
        image_size=exported.image_size,
        export_path=str(exported.path),
    )
    vector_store().ensure_collection(record.collection, record.embedding_dim)
    model_activate(record)
    return record


@pytest.fixture
def active_model(db, exported_bootstrap, vector_store_path, media_root):
    return activate_exported(exported_bootstrap)


def empty_redis_db(url: str) -> str:
    """Check the Redis database at ``url`` answers and empty it; fail the test with the fix if not."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {url}; start it (see README) before the integration tests")
    client.flushdb()
    return url


def shared_redis_cache(settings, broker_url: str, db: int = 12) -> str:
    """Give this process a Redis cache (an emptied DB beside the test broker's) that a worker started
    with ``CACHE_URL`` set to the returned URL shares: upload batching needs one (workers/upload_batching.py)."""
    from config.settings.env import cache_from_url

    url = empty_redis_db(broker_url.rsplit("/", 1)[0] + f"/{db}")
    settings.CACHES = {"default": cache_from_url(url)}
    return url


@pytest.fixture
def broker_url(settings) -> str:
    return empty_redis_db(os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15"))


@pytest.fixture
def celery_over_redis(broker_url, settings):
    """Make this process send tasks to Redis instead of running them eagerly."""
    previous = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.update(task_always_eager=False, broker_url=broker_url)
    _reset_pool()
    yield broker_url
    app.conf.update(**previous)
    _reset_pool()


def _reset_pool() -> None:
    # The producer pool was built for the previous broker URL; drop it so the next send reconnects.
    from kombu import pools

    pools.reset()  # kombu's process-wide pools, keyed by broker
    app._pool = None
    app.amqp._producer_pool = None
