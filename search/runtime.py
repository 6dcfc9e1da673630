"""Process-wide handles on the two external systems: the vector store and the embedders.

One vector-store client per process (the embedded engines allow one owner per folder), one embedder
per model version. Both are opened lazily, so a process that never searches never loads a model.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from ml.serving import Embedder
    from search.models import ModelVersion
    from search.vector_store import VectorStore

_lock = threading.RLock()
_store: VectorStore | None = None
_embedders: dict[tuple[str, int], Embedder] = {}


def vector_store() -> VectorStore:
    """The process's vector store; raises VectorStoreLocked/VectorStoreUnavailable with one-line messages."""
    global _store
    with _lock:
        if _store is None:
            from search.vector_store import open_vector_store

            if settings.QDRANT_URL:
                _store = open_vector_store(url=settings.QDRANT_URL, api_key=settings.QDRANT_API_KEY)
            else:
                _store = open_vector_store(
                    path=str(settings.VECTOR_STORE_PATH),
                    flush_interval_s=settings.VECTOR_STORE_FLUSH_INTERVAL_S,
                )
        return _store


def embedder_for(model: ModelVersion) -> Embedder:
    """The embedder for one model version: TF Serving when configured, else the SavedModel in-process."""
    key = (model.name, model.version)
    with _lock:
        embedder = _embedders.get(key)
        if embedder is None:
            from ml.serving import LocalEmbedder, TFServingEmbedder

            if settings.TF_SERVING_TARGET:
                embedder = TFServingEmbedder(
                    settings.TF_SERVING_TARGET,
                    model.name,
                    version=model.version,
                    max_batch=settings.EMBED_BATCH_SIZE,
                    timeout_s=settings.TF_SERVING_TIMEOUT_S,
                )
            else:
                embedder = LocalEmbedder(model.export_path, max_batch=settings.EMBED_BATCH_SIZE)
            _embedders[key] = embedder
        return embedder


def reset_vector_store() -> None:
    """Close and forget the vector store only (the model stays loaded)."""
    global _store
    with _lock:
        if _store is not None:
            try:
                _store.close()
            finally:
                _store = None


def reset() -> None:
    """Close and forget every handle (tests, and a worker after fork)."""
    with _lock:
        reset_vector_store()
        for embedder in _embedders.values():
            close = getattr(embedder, "close", None)
            if close is not None:
                close()
        _embedders.clear()
