"""What the index looks like, read from the database at scrape time (a few indexed queries per scrape,
whatever the catalog's size): pending and failed images, the index lag, the active model, and the
progress of a reindex. Each function is a scrape-time collector (search.metrics.exposition)."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

from catalog import selectors as catalog_selectors
from search import selectors


def collect_index_backlog() -> Iterable[Metric]:
    backlog = catalog_selectors.image_index_backlog()
    images = GaugeMetricFamily(
        "lookalike_index_images",
        "Catalog images waiting to be indexed (pending) or whose last indexing attempt failed.",
        labels=["status"],
    )
    images.add_metric(["pending"], backlog.pending)
    images.add_metric(["failed"], backlog.failed)
    yield images
    lag = 0.0
    if backlog.oldest_pending_at is not None:
        lag = max(0.0, (timezone.now() - backlog.oldest_pending_at).total_seconds())
    yield GaugeMetricFamily(
        "lookalike_index_lag_seconds",
        "Seconds the longest-waiting pending image has waited since it was uploaded or last asked "
        "for (0 when nothing is pending).",
        value=lag,
    )


def collect_active_model() -> Iterable[Metric]:
    model = selectors.active_model()
    yield GaugeMetricFamily(
        "lookalike_active_model_version",
        "Version of the model that embeds queries and whose collection is searched (0: none active).",
        value=model.version if model is not None else 0,
    )
    info = InfoMetricFamily(
        "lookalike_active_model",
        "The active model version and what it is.",
        labels=["version", "kind", "backbone", "embedding_dim", "image_size"],
    )
    if model is not None:
        info.add_metric(
            [str(model.version), model.kind, model.backbone, str(model.embedding_dim), str(model.image_size)],
            {},
        )
    yield info


def collect_reindex_progress() -> Iterable[Metric]:
    progress = GaugeMetricFamily(
        "lookalike_reindex_images",
        "Images of the reindex in progress: done, failed and total, by the model version being filled.",
        labels=["model_version", "state"],
    )
    job = selectors.reindex_in_progress()
    if job is not None:
        reindex = job.result  # the reindex's state (search/services/reindex.py)
        version = str(reindex["model_version"])
        for state, key in (("done", "indexed"), ("failed", "failed"), ("total", "total")):
            progress.add_metric([version, state], reindex.get(key, 0))
    yield progress


# Registered on the web's /metrics by config/metrics.py (SCRAPE_COLLECTORS).
INDEX_STATE_COLLECTORS = (collect_index_backlog, collect_active_model, collect_reindex_progress)
