"""Process start-up: open the vector store, load the active model and the reader of shoppers' photos
before the first request rather than during it (about 10 s for the TensorFlow runtime, 1 s for the
reader)."""

from __future__ import annotations

import logging

import numpy as np

from search import selectors
from search.embedders import embedder_for
from search.services import text_rerank
from search.vector_store import vector_store

log = logging.getLogger(__name__)


def warm_up() -> None:
    try:
        vector_store()
        model = selectors.active_model()
        if model is not None:
            embedder = embedder_for(model)
            embedder.embed(np.zeros((1, model.image_size, model.image_size, 3), np.uint8))
    except Exception:  # readiness (/readyz) reports what is wrong; serving must still start
        log.exception("warm-up failed")
    try:
        text_rerank.warm_up()
    except Exception:  # searches then skip the re-ranking ("failed"), as they would anyway
        log.warning("the text reader could not be warmed up", exc_info=True)
