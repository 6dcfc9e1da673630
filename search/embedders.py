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
                # The version's verified model_int8.tflite through LiteRT (EMBEDDING_PRECISION=int8, not
                # the default), else its model.tflite (2x faster than the SavedModel at batch 1 here), else its
                # SavedModel through the TF runtime (versions exported before either existed).
                embedder = open_local_embedder(
                    model.export_path,
                    max_batch=settings.EMBED_BATCH_SIZE,
                    tflite_batch=settings.LITERT_BATCH_SIZE,
                    precision=settings.EMBEDDING_PRECISION,
                )
            _embedders[key] = embedder
        return embedder


def serving_precision(model: ModelVersion) -> str:
    """Which file embeds for ``model`` in this process, in a few words (the admin shows it): what
    :func:`embedder_for` opens, from the setting and the version's files, without loading a model."""
    from ml import tflite
    from ml.serving.litert import int8_verified

    if settings.TF_SERVING_TARGET:
        return "TF Serving (model.tflite or the SavedModel, as the server is set up)"
    int8 = (model.config or {}).get("int8") or {}
    if settings.EMBEDDING_PRECISION == "int8" and int8_verified(model.export_path):
        return (
            f"int8 ({int8.get('recipe', '?')}; vs float: min cosine {int8.get('min_cosine', '?')}, "
            f"nearest photo kept {int8.get('top1_agreement', '?')})"
        )
    if tflite.tflite_path(model.export_path) is None:
        return "float (SavedModel: no model.tflite)"
    if settings.EMBEDDING_PRECISION == "float":
        if settings.EMBEDDING_PRECISION_SETTING == "auto":
            return "float (EMBEDDING_PRECISION=auto: this CPU has no int8 dot-product instructions)"
        return "float (EMBEDDING_PRECISION=float)"
    return f"float (no verified int8 file: {int8.get('reason') or 'exported before int8'})"


def reset_embedders() -> None:
    """Close and forget every embedder (tests, and a worker after fork)."""
    with _lock:
        for embedder in _embedders.values():
            embedder.close()
        _embedders.clear()
