"""How a process serves its metrics: which values (this process's, or every process's in multiprocess
mode), the scrape-time collectors, who may read them, and a small HTTP server for processes that have
no web server of their own (the Celery worker).

Multiprocess mode: gunicorn with several workers, and Celery's prefork pool, run the code that
observes in several processes. With ``PROMETHEUS_MULTIPROC_DIR`` set in the environment before
prometheus_client is imported, every process writes its values to files there and a scrape sums the
files (``MultiProcessCollector``). The directory must be emptied when the process group starts
(``reset_multiprocess_dir``: gunicorn's ``on_starting``, the worker's ``worker_init``), and each
process group (the web, each worker) needs its own. Without it (the embedded default: one process)
the values live in the process's memory.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A function called on every scrape that yields metric families (prometheus_client.core.*MetricFamily).
ScrapeCollector = Callable[[], Iterable[Metric]]


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def reset_multiprocess_dir(path: str | None = None) -> None:
    """Empty the multiprocess directory (files of a previous run would be summed into this one's)."""
    path = path or multiprocess_dir()
    if not path:
        return
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """Bookkeeping when a process of the group exits (gunicorn's ``child_exit``, Celery's
    ``worker_process_shutdown``): its live gauges stop counting; its counters stay in the sums."""
    if multiprocess_dir():
        mark_process_dead(pid)


class _Forward:
    """This process's own registry, re-registered into a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _ScrapeTime:
    """Runs the scrape-time collectors; one that fails is logged and reported as down, never a 500."""

    def __init__(self, collectors: Sequence[ScrapeCollector]) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "lookalike_scrape_collector_up",
            "1 when a scrape-time collector answered on this scrape, 0 when it failed (see the log).",
            labels=["collector"],
        )
        for collector in self.collectors:
            name = getattr(collector, "__name__", type(collector).__name__)
            try:
                families = list(collector())
            except Exception:  # a database or broker that is down must not take the scrape with it
                log.exception("metrics collector %s failed", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        if self.collectors:
            yield up


def scrape_registry(collectors: Sequence[ScrapeCollector] = ()) -> CollectorRegistry:
    """A registry for one scrape: every process's values in multiprocess mode (else this process's),
    plus the scrape-time collectors."""
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        MultiProcessCollector(registry, path=path)
    else:
        registry.register(_Forward())
    registry.register(_ScrapeTime(collectors))
    return registry


def render(accept: str | None, collectors: Sequence[ScrapeCollector] = ()) -> tuple[bytes, str]:
    """(body, content type) of a scrape; the format follows the Accept header (Prometheus text, or
    OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(scrape_registry(collectors)), content_type


# --- who may scrape ------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def peer_allowed(address: str) -> bool:
    """Whether the TCP peer ``address`` may read metrics (``METRICS_ALLOWED_CIDRS``).

    Callers pass the socket's peer (``REMOTE_ADDR``), never X-Forwarded-For: a client writes that
    header itself. An IPv4 peer seen through an IPv6 socket (``::ffff:127.0.0.1``) counts as IPv4.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(settings.METRICS_ALLOWED_CIDRS)))


# --- a metrics endpoint for processes without a web server ------------------------------------------


def metrics_app(collectors: Sequence[ScrapeCollector] = ()) -> Callable:
    """A WSGI application that serves ``/metrics`` to allowed peers."""

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found: metrics are at /metrics.\n"]
        if not peer_allowed(environ.get("REMOTE_ADDR", "")):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"This address may not read metrics (METRICS_ALLOWED_CIDRS).\n"]
        body, content_type = render(environ.get("HTTP_ACCEPT"), collectors)
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress never keeps the process from exiting


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per scrape is noise
        pass


def serve_metrics(host: str, port: int, collectors: Sequence[ScrapeCollector] = ()) -> WSGIServer:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the server (``server_port``
    is the bound port, ``shutdown()`` stops it)."""
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    server = make_server(host, port, metrics_app(collectors), server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
