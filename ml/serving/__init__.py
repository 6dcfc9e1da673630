"""Embedders: uint8 pixels in, float32 embeddings out, from TF Serving (gRPC) or in-process.

All implement :class:`Embedder` (docs/CONTRACTS.md) and return the same vectors for the same
exported version, so the search layer picks one by configuration and never by code path. In-process,
:func:`open_local_embedder` picks the version's ``model.tflite`` (:class:`TFLiteEmbedder`, the fast
CPU runtime) and falls back to its SavedModel (:class:`LocalEmbedder`).

Errors are typed so callers can choose: :class:`EmbedderUnavailable` is transient (a Celery task
retries it, the web page shows "try again"), :class:`ModelNotFound` and :class:`BadEmbedding` are
configuration faults that retrying cannot fix.

TensorFlow and the TF Serving protos (which import TensorFlow) load on first use, not at import, so
``import ml.serving`` stays cheap for processes that only need the error types.

errors.py (the error types), base.py (the interface), litert.py (TFLite, and ``open_local_embedder``),
savedmodel.py (the SavedModel fallback), tfserving.py (gRPC).
"""

from ml.serving.base import Embedder, read_model_metadata
from ml.serving.errors import BadEmbedding, EmbedderError, EmbedderUnavailable, InvalidInput, ModelNotFound
from ml.serving.litert import TFLiteEmbedder, open_local_embedder
from ml.serving.savedmodel import LocalEmbedder
from ml.serving.tfserving import TFServingEmbedder

__all__ = [
    "BadEmbedding",
    "Embedder",
    "EmbedderError",
    "EmbedderUnavailable",
    "InvalidInput",
    "LocalEmbedder",
    "ModelNotFound",
    "TFLiteEmbedder",
    "TFServingEmbedder",
    "open_local_embedder",
    "read_model_metadata",
]
