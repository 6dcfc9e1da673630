"""The embedder factory: which model server embeds for a model version, one embedder per version per
process, opened lazily so a process that never embeds never loads a model.

TF Serving over gRPC when ``TF_SERVING_TARGET`` is set, else the exported model in this process.
"""

from __future__ import annotations

import threading

from django.conf import settings

from ml.serving import Embedder, TFServingEmbedder, open_local_embedder
from search.models import ModelVersion

_lock = threading.RLock()
_embedders: dict[tuple[str, int], Embedder] = {}


def embedder_for(model: ModelVersion) -> Embedder:
    """The embedder for one model version (raises ml.serving's EmbedderError subclasses)."""
    key = (model.name, model.version)
    with _lock:
        embedder = _embedders.get(key)
        if embedder is None:
            if settings.TF_SERVING_TARGET:
                embedder = TFServingEmbedder(
                    settings.TF_SERVING_TARGET,
                    model.name,
                    version=model.version,
                    max_batch=settings.EMBED_BATCH_SIZE,
                    timeout_s=settings.TF_SERVING_TIMEOUT_S,
                )
            else:
                # The version's model.tflite through LiteRT when it has one (7-10x faster at batch 1
                # here), else its SavedModel through the TF runtime (versions exported before).
                embedder = open_local_embedder(model.export_path, max_batch=settings.EMBED_BATCH_SIZE)
            _embedders[key] = embedder
        return embedder


def reset_embedders() -> None:
    """Close and forget every embedder (tests, and a worker after fork)."""
    with _lock:
        for embedder in _embedders.values():
            embedder.close()
        _embedders.clear()
