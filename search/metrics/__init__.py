"""Prometheus metrics. ``instruments``: what searches and embeddings cost, observed where the work
happens. ``state``: what the index looks like, read from the database at scrape time. ``exposition``:
how a process serves its metrics (the web's /metrics and the Celery worker's endpoint both use it),
with multiprocess mode and the scrape allow-list."""

from prometheus_client import disable_created_metrics

# The `_created` series double every counter and histogram, and nothing here reads them. Every metrics
# module (here, config/ and workers/) imports this package first.
disable_created_metrics()
