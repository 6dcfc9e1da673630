"""The web process's metrics: every request's count and latency by endpoint, and ``/metrics``.

Why prometheus-client and not django-prometheus: the latter needs two middlewares (first and last),
exports dozens of series no dashboard here reads, labels latency by view and method but not by
status, and its export view has no access check. What is needed is one middleware (below), the
search and worker instruments, and scrape-time collectors over the database and the broker, all on
prometheus-client, which also gives gunicorn's several processes one view (multiprocess mode, see
search/metrics/exposition.py).

``/metrics`` is answered here, ahead of every other middleware: Prometheus scrapes ``web:8000``
over plain HTTP with its own Host header, which SECURE_SSL_REDIRECT and ALLOWED_HOSTS would
otherwise turn into a redirect or a 400. What protects it is the peer check (METRICS_ALLOWED_CIDRS,
against the TCP peer address, never X-Forwarded-For) and, in the compose stack, nginx refusing the
path on the public port. The output holds no URL built from the Host header.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

from search.metrics import exposition
from search.metrics.instruments import LATENCY_BUCKETS
from search.metrics.state import INDEX_STATE_COLLECTORS
from workers.metrics import collect_queue_depth

# Called on every scrape of /metrics; each yields prometheus_client metric families (GaugeMetricFamily
# and friends) computed from the database or the broker, in bounded, indexed queries. One that raises is
# logged and reported as lookalike_scrape_collector_up{collector=...} 0. Job progress plugs in here:
# append the job model's collector function (e.g. a `collect_job_progress` next to that model).
SCRAPE_COLLECTORS: list[exposition.ScrapeCollector] = [*INDEX_STATE_COLLECTORS, collect_queue_depth]

# Methods outside this set are one label value, so a client cannot mint new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "lookalike_http_requests",
    "HTTP requests answered, by endpoint (URL route name), method and status.",
    ["endpoint", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "lookalike_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by endpoint, method and status.",
    ["endpoint", "method", "status"],
    buckets=LATENCY_BUCKETS,
)


def endpoint_of(request: HttpRequest) -> str:
    """The route's name (``search``, ``product-images``, ``admin:catalog_product_change``), never the
    raw path, so label values stay bounded whatever URLs clients send."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or "unnamed"
    if request.path_info.startswith(settings.STATIC_URL):
        return "static"  # answered by WhiteNoise before URL routing
    return "unmatched"


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not exposition.peer_allowed(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse(
            "This address may not read metrics (METRICS_ALLOWED_CIDRS).\n",
            status=403,
            content_type="text/plain",
        )
    if request.method not in ("GET", "HEAD"):
        return HttpResponse("Metrics are read with GET.\n", status=405, content_type="text/plain")
    body, content_type = exposition.render(request.META.get("HTTP_ACCEPT"), SCRAPE_COLLECTORS)
    return HttpResponse(body, content_type=content_type)


class MetricsMiddleware:
    """First in MIDDLEWARE: serves /metrics, and times every other request end to end."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == exposition.METRICS_PATH:
            return metrics_view(request)
        start = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - start
        method = request.method if request.method in _METHODS else "other"
        labels = (endpoint_of(request), method, str(response.status_code))
        HTTP_REQUESTS.labels(*labels).inc()
        HTTP_REQUEST_SECONDS.labels(*labels).observe(elapsed)
        return response
