"""What searches and embeddings cost, observed once where the work happens (search/services/).

Label values are bounded: stage and purpose are fixed words, model versions are the few rows of
ModelVersion. A counter's exported name gets ``_total``; ``rate(lookalike_images_embedded_total[1m])``
is images embedded per second.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

# Seconds: from a stored-vector lookup (about 1 ms) to a model server at its 5 s deadline.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SEARCH_STAGES = ("decode", "embed", "search", "read_text", "catalog", "total")
# What a search started from: a photo (decode + embed), a product or an image (a stored vector, so
# "embed" is a lookup).
QUERY_KINDS = ("photo", "product", "image")
# Why images were embedded: catalog images for the index, or a shopper's photo for a query.
PURPOSES = ("index", "query")

SEARCH_STAGE_SECONDS = Histogram(
    "lookalike_search_stage_seconds",
    "Time of each stage of a successful search: decode, embed, search, catalog, and the total.",
    ["stage", "query"],
    buckets=LATENCY_BUCKETS,
)
IMAGES_EMBEDDED = Counter(
    "lookalike_images_embedded",
    "Images embedded by a model: catalog images for the index, photos for queries.",
    ["model_version", "purpose"],
)
EMBED_CALL_SECONDS = Histogram(
    "lookalike_embed_call_seconds",
    "Time of one call to the model (a batch of images for indexing, one photo for a query).",
    ["model_version", "purpose"],
    buckets=LATENCY_BUCKETS,
)


def observe_search(timings_ms: Mapping[str, float], query: str) -> None:
    """Record a finished search's stage timings (``SearchOutcome.timings_ms``, milliseconds)."""
    for stage in SEARCH_STAGES:
        if stage in timings_ms:
            SEARCH_STAGE_SECONDS.labels(stage, query).observe(timings_ms[stage] / 1000.0)


def observe_embedding(*, model_version: int | str, purpose: str, images: int, seconds: float) -> None:
    """Record one embedding call of ``images`` images that took ``seconds``."""
    version = str(model_version)
    IMAGES_EMBEDDED.labels(version, purpose).inc(images)
    EMBED_CALL_SECONDS.labels(version, purpose).observe(seconds)
