"""This process's one vector store, opened lazily from Django settings.

The embedded engines allow one owner per folder, so a process opens its store once and every caller
shares it. The rest of this package is Django-free; only this module reads settings.
"""

from __future__ import annotations

import threading

from django.conf import settings

from .base import VectorStore

_lock = threading.RLock()
_store: VectorStore | None = None


def vector_store() -> VectorStore:
    """The process's vector store; raises VectorStoreLocked/VectorStoreUnavailable with one-line messages."""
    global _store
    with _lock:
        if _store is None:
            from . import open_vector_store

            if settings.QDRANT_URL:
                _store = open_vector_store(url=settings.QDRANT_URL, api_key=settings.QDRANT_API_KEY)
            else:
                _store = open_vector_store(
                    path=str(settings.VECTOR_STORE_PATH),
                    flush_interval_s=settings.VECTOR_STORE_FLUSH_INTERVAL_S,
                )
        return _store


def reset_vector_store() -> None:
    """Close and forget the store (tests, a worker after fork, a process handing the store over)."""
    global _store
    with _lock:
        if _store is not None:
            try:
                _store.close()
            finally:
                _store = None
