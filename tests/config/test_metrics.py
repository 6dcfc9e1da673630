"""/metrics on the web process: refused to addresses outside METRICS_ALLOWED_CIDRS, bounded labels, a
failing collector reported, and values summed over processes in multiprocess mode (gunicorn)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from search.metrics.exposition import reset_multiprocess_dir
from tests.support.metrics import assert_sane_histogram, samples, scrape, value

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def test_a_failing_collector_is_reported_and_the_scrape_still_answers(client, monkeypatch) -> None:
    from config import metrics

    def collect_broken():
        raise RuntimeError("database went away")

    monkeypatch.setattr(metrics, "SCRAPE_COLLECTORS", [*metrics.SCRAPE_COLLECTORS, collect_broken])
    families = scrape(client)
    assert value(families, "lookalike_scrape_collector_up", collector="collect_broken") == 0
    assert value(families, "lookalike_scrape_collector_up", collector="collect_active_model") == 1


def test_endpoint_labels_are_route_names_never_raw_paths(client) -> None:
    client.get("/api/v1/products/987654/")
    client.get("/no/such/page-4f2a9c/")
    client.generic("BREW", "/healthz")
    families = scrape(client)
    counter = "lookalike_http_requests"
    assert value(families, counter, f"{counter}_total", endpoint="product-detail", status="404") >= 1
    assert value(families, counter, f"{counter}_total", endpoint="unmatched", status="404") >= 1
    assert value(families, counter, f"{counter}_total", endpoint="healthz", method="other") >= 1
    endpoints = {s.labels["endpoint"] for s in families[counter].samples}
    assert not [e for e in endpoints if "/" in e or "987654" in e], endpoints


# --- who may scrape -------------------------------------------------------------------------------


def test_metrics_are_refused_outside_the_allowed_networks(client, settings) -> None:
    assert client.get("/metrics").status_code == 200  # the test client's peer is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:127.0.0.1").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 403 and b"lookalike_" not in refused.content
    # A client that claims to be local in a header is still judged by its TCP peer address.
    spoofed = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert spoofed.status_code == 403
    assert client.post("/metrics").status_code == 405

    settings.METRICS_ALLOWED_CIDRS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 200
    assert client.get("/metrics").status_code == 403


def test_prometheus_may_scrape_over_plain_http_with_its_own_host_header(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["shop.example.com"]
    assert client.get("/metrics", HTTP_HOST="web:8000").status_code == 200
    assert client.get("/healthz", HTTP_HOST="web:8000").status_code == 400  # everything else is checked


# --- multiprocess mode ------------------------------------------------------------------------------


def _observe_in_another_process(folder: Path) -> None:
    code = "from search.metrics.instruments import observe_search; observe_search({'decode': 3.0, 'total': 9.0}, 'photo')"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True, timeout=60)


def test_multiprocess_mode_sums_every_process(client, active_model, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    _observe_in_another_process(folder)
    _observe_in_another_process(folder)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    families = scrape(client)
    name = "lookalike_search_stage_seconds"
    assert assert_sane_histogram(families, name, stage="decode", query="photo") == 2
    assert value(families, name, f"{name}_sum", stage="total") == pytest.approx(0.018)
    # The database-backed gauges are computed by the scraping process, as without multiprocess mode.
    assert value(families, "lookalike_active_model_version") == active_model.version

    reset_multiprocess_dir(str(folder))  # what gunicorn's on_starting does for a new run
    assert samples(scrape(client), name, f"{name}_count") == []


def test_gunicorn_hooks_empty_the_folder_and_forget_dead_workers(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "prometheus"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    conf_path = REPO / "platform" / "gunicorn.conf.py"
    conf: dict = {"__file__": str(conf_path), "__name__": "__config__"}
    exec(compile(conf_path.read_text(), str(conf_path), "exec"), conf)

    folder.mkdir()
    (folder / "counter_4242.db").write_bytes(b"stale")
    conf["on_starting"](None)
    assert folder.is_dir() and list(folder.iterdir()) == []

    live = folder / "gauge_livesum_4343.db"
    kept = folder / "histogram_4343.db"
    live.write_bytes(b"")
    kept.write_bytes(b"")

    class Worker:
        pid = 4343

    conf["child_exit"](None, Worker())
    assert not live.exists(), "a dead worker's live gauges must stop counting"
    assert kept.exists(), "a dead worker's counters and histograms stay in the sums"


def test_every_dashboard_query_reads_a_metric_we_export(client, settings, broker_url) -> None:
    from tests.test_compose import dashboard_metric_names

    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker, so the queue metrics are exported too
    settings.CELERY_BROKER_URL = broker_url
    families = scrape(client)
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",)}
    exported = {f.name + suffix for f in families.values() for suffix in suffixes.get(f.type, ("",))}
    for title, names in dashboard_metric_names().items():
        assert names and names <= exported, f"panel {title!r} reads {sorted(names - exported)}, not exported"
