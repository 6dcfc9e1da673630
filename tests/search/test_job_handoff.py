"""Commands beside a running site: this test process owns the embedded store and runs jobs on its runner
threads, as the web server does; `manage.py` in a second, real process hands its job over and follows it
to the end, while searches keep coming through the HTTP API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from search import selectors
from search.embedders import reset_embedders
from search.jobs.training import database_url
from search.models import Job, JobState, ModelKind, ModelVersion
from search.services import reindex
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes
from tests.search.conftest import CANDIDATE_VERSION
from tests.support.celery_worker import wait_until
from tests.support.model_fixtures import SEARCH_MODEL_VERSION
from tests.support.search_load import SearchLoad

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def owner(vector_store_path, monkeypatch):
    """This process holds the store and runs queued jobs, as the embedded web process does."""
    from search.api.throttling import SearchThrottle
    from workers.embedded import JobRunner

    # One client sends a search every few milliseconds: far past the anonymous rate limit.
    monkeypatch.setattr(SearchThrottle, "THROTTLE_RATES", {"search_anon": "100000/min", "search_user": None})
    vector_store()
    runner = JobRunner(poll_s=0.1).start()
    yield runner
    runner.stop()


def manage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": database_url(),
        "VECTOR_STORE_PATH": str(settings.VECTOR_STORE_PATH),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "MODELS_DIR": str(settings.MODELS_DIR),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("CELERY_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_reindex_and_rollback_from_a_second_process_while_searches_run(
    owner, indexed_catalog, active_model, candidate, live_server
) -> None:
    _, photos = indexed_catalog
    reindex.BATCH = 1  # a batch per image: the swap happens mid-load, after several fills
    load = SearchLoad(live_server.url, photos["RED-1"]).start()
    try:
        wait_until(lambda: load.statuses[200] >= 3, 30, "searches answering before the reindex")
        promoted = manage("reindex", "--model", str(CANDIDATE_VERSION), "--force")
        served_new = dict(load.versions)
        rolled_back = manage("rollback")
        wait_until(
            lambda: load.versions[SEARCH_MODEL_VERSION] > served_new.get(SEARCH_MODEL_VERSION, 0),
            30,
            "searches answered by the restored model",
        )
    finally:
        reindex.BATCH = 64
        load.stop()

    assert promoted.returncode == 0, promoted.stderr
    out = promoted.stdout
    assert "(reindex) queued for the process that owns the vector store" in out
    assert "serves now" in out and "3 indexed, 0 failed" in out, out
    assert "evaluation gate: " in out and "Gate: " in out  # the gate's verdict, as the job logged it
    assert "Traceback" not in promoted.stderr
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert f"Active model is v{SEARCH_MODEL_VERSION} again (was v{CANDIDATE_VERSION})" in rolled_back.stdout
    assert selectors.active_model().version == SEARCH_MODEL_VERSION

    # Zero failed searches across the fill, the promotion and the rollback; both models answered.
    assert set(load.statuses) == {200}, (load.statuses, load.failures[:3])
    assert served_new.get(CANDIDATE_VERSION, 0) >= 1, load.versions
    assert load.statuses[200] >= 10
    jobs = {job.kind: job for job in Job.objects.all()}
    assert jobs["reindex"].state == jobs["rollback"].state == JobState.SUCCEEDED
    assert jobs["reindex"].requested_by == "manage.py reindex"
    assert jobs["reindex"].done == jobs["reindex"].total == 3
    assert jobs["reindex"].runner.endswith(":lookalike-jobs-store")


def test_no_wait_returns_the_job_id_and_the_owner_runs_it(
    owner, indexed_catalog, active_model, candidate
) -> None:
    result = manage("reindex", "--model", str(CANDIDATE_VERSION), "--force", "--no-wait")
    assert result.returncode == 0, result.stderr
    job = Job.objects.get(kind="reindex")
    assert f"Job {job.pk} (reindex) queued" in result.stdout and "Not waiting" in result.stdout
    wait_until(lambda: Job.objects.get(pk=job.pk).finished, 60, "the owner to run the job")
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.result["status"] == "promoted" and selectors.active_model().version == CANDIDATE_VERSION


def test_a_refused_job_is_one_line_from_the_second_process(owner, active_model) -> None:
    result = manage("reindex")  # no candidate to move to
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert err[-1].startswith("CommandError: Job ") and "No candidate model to reindex to" in err[-1]
    assert "Traceback" not in result.stderr


def test_the_first_import_beside_the_site_makes_the_catalog_searchable(
    owner, settings, media_root, tmp_path, api_client
) -> None:
    settings.AUTO_BOOTSTRAP_MODEL = True
    settings.BACKBONE_WEIGHTS = "none"  # random weights at 32 px: the export path, without a download
    settings.BOOTSTRAP_IMAGE_SIZE = 32
    settings.MODELS_DIR = tmp_path / "models"
    reset_embedders()  # the model made here is a new v1: no embedder an earlier test loaded for its v1
    colours = [(220, 20, 20), (20, 200, 40), (20, 40, 220), (200, 200, 30), (120, 30, 160)]
    rows = []
    for n, colour in enumerate(colours):
        (tmp_path / f"p{n}.jpg").write_bytes(image_bytes(color=colour, pattern=n + 1))
        rows.append(json.dumps({"sku": f"P{n}", "title": f"product {n}", "images": [f"p{n}.jpg"]}))
    (tmp_path / "catalog.jsonl").write_text("\n".join(rows) + "\n")
    assert selectors.active_model() is None

    result = manage("import_catalog", str(tmp_path / "catalog.jsonl"))
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip().splitlines()
    assert out[0].endswith(
        "(import) queued for the process that owns the vector store (the web server's job runner)."
    )
    assert re.fullmatch(
        r"sync #\d+ done in [\d.]+ s: 5 product\(s\) read; 5 created, 0 updated, 0 unchanged, "
        r"0 reactivated, 0 removed; images 0 fetched, 5 added from files, 0 unchanged, 0 failed, "
        r"0 removed; 0 error\(s\)\. New images: 5 indexed, 0 pending, 0 failed\.",
        out[-1],
    )
    assert "WARNING" not in result.stderr and "Traceback" not in result.stderr

    model = ModelVersion.objects.get()
    assert model.kind == ModelKind.BOOTSTRAP and model.status == "active" and model.image_size == 32
    response = api_client.post(
        "/api/v1/search/", {"image": _upload(image_bytes(color=(20, 200, 40), pattern=2))}, format="multipart"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == model.version and body["model_kind"] == "bootstrap"
    assert body["results"][0]["product"]["sku"] == "P1"


def _upload(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("q.jpg", data)
