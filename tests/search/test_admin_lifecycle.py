"""The model life cycle in the admin: the model list (scores, calibration, which model serves), the
train / promote / roll back pages that submit jobs (staff only, CSRF-protected), and the job page with
its live status endpoint and the evaluation gate's verdict."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from search.jobs.records import job_submit
from search.models import Job, JobState, ModelStatus
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def admin_client(staff_user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    return client


def _csrf(client: Client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


def test_the_model_list_shows_scores_calibration_and_who_serves(
    admin_client, active_model, candidate
) -> None:
    active_model.metrics = {"recall@1": 0.5412, "map@r": 0.3101}
    active_model.save()
    candidate.metrics = {"recall@1": 0.8034, "map@r": 0.6123}
    # What ml.calibration.Calibration.to_json stores (its curves cut short).
    candidate.calibration = {
        "same": 0.8213,
        "margin": 0.0412,
        "precision": 0.951,
        "coverage": 0.512,
        "no_match_unseen": 0.903,
        "queries": 300,
        "met": False,
        "curves": {"threshold": [0.1, 0.2], "precision": [0.5, 0.6]},
    }
    candidate.save()
    page = admin_client.get("/admin/search/modelversion/").content.decode()
    assert "Serving now: <strong>v7</strong> (pretrained" in page
    assert page.count("● serving now") == 1
    calibration = (
        "“same” at score ≥ 0.82, 0.04 ahead of the next: right 95%, said for 51% of queries; unknown "
        "products get “no match” 90% (on 300 queries); targets not met"
    )
    for text in ("0.541", "0.310", "0.803", "0.612", calibration, "not calibrated"):
        assert text in page, text
    assert "no_match_unseen" not in page and "met ≥" not in page  # no raw dump of the fields
    assert "Train a candidate" in page and "Reindex and promote…" in page
    assert "Roll back to" not in page  # nothing served before v7


def test_the_change_page_shows_the_calibration_plot(admin_client, candidate, tmp_path) -> None:
    plot = tmp_path / "calibration.png"
    plot.write_bytes(PNG)
    candidate.calibration_plot_path = str(plot)
    candidate.save()
    page = admin_client.get(f"/admin/search/modelversion/{candidate.pk}/change/").content.decode()
    url = f"/admin/search/modelversion/{candidate.pk}/calibration.png"
    assert f'src="{url}"' in page and "Reindex and promote…" in page
    # Which file would embed for it: model.tflite, as tests pin EMBEDDING_PRECISION (config/settings/test.py).
    assert "embeds with" in page.lower() and "float (EMBEDDING_PRECISION=float)" in page
    response = admin_client.get(url)
    assert response["Content-Type"] == "image/png" and b"".join(response.streaming_content) == PNG


def test_plots_and_action_pages_need_the_model_permission_not_just_staff(
    django_user_model, candidate, tmp_path
) -> None:
    from django.contrib.auth.models import Permission

    plot = tmp_path / "report.png"
    plot.write_bytes(PNG)
    candidate.plot_path = candidate.calibration_plot_path = str(plot)
    candidate.save()
    clerk = django_user_model.objects.create_user("clerk", password="pw-for-tests-only", is_staff=True)
    client = Client()
    client.force_login(clerk)
    base = f"/admin/search/modelversion/{candidate.pk}"
    plots = (f"{base}/plot.png", f"{base}/calibration.png")
    actions = (
        "/admin/search/modelversion/train/",
        f"{base}/promote/",
        "/admin/search/modelversion/rollback/",
    )
    assert client.get(f"{base}/change/").status_code == 403  # the page the plots belong to
    for url in plots + actions:
        assert client.get(url).status_code == 403, url
    clerk.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
    client.force_login(django_user_model.objects.get(pk=clerk.pk))  # permissions are cached per user object
    assert client.get(f"{base}/change/").status_code == 200
    for url in plots:
        response = client.get(url)
        assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    for url in actions:  # viewing is not changing
        assert client.get(url).status_code == 403, url


def test_train_a_candidate_submits_a_job_and_lands_on_its_page(admin_client) -> None:
    url = "/admin/search/modelversion/train/"
    form = admin_client.get(url).content.decode()
    assert (
        'name="epochs"' in form and 'value="15"' in form and 'value="348"' in form
    )  # TrainConfig's defaults
    fields = {
        "mode": "cached",
        "trainable_blocks": "5",
        "backbone": "mobilenet_v2_035",
        "weights": "none",
        "loss": "multi_similarity",
        "image_size": "32",
        "head_epochs": "1",
        "epochs": "1",
        "then_promote": "on",
    }
    assert admin_client.post(url, fields).status_code == 403  # no CSRF token
    assert not Job.objects.exists()
    response = admin_client.post(url, {**fields, "csrfmiddlewaretoken": _csrf(admin_client, url)})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/search/job/{job.pk}/change/"
    assert job.kind == "train" and job.state == JobState.QUEUED and job.requested_by == "admin (admin)"
    assert job.params == {
        "options": {
            "mode": "cached",
            "backbone": "mobilenet_v2_035",
            "weights": "none",
            "loss": "multi_similarity",
            "image_size": 32,
            "trainable_blocks": 5,
            "head_epochs": 1,
            "epochs": 1,
        },
        "then_promote": True,
    }


def test_a_refused_training_says_why_on_the_form(admin_client, tmp_path) -> None:
    url = "/admin/search/modelversion/train/"
    fields = {
        "mode": "cached",
        "trainable_blocks": "5",
        "backbone": "mobilenet_v2_035",
        "weights": str(tmp_path / "missing.weights.h5"),
        "loss": "multi_similarity",
        "image_size": "32",
        "head_epochs": "1",
        "epochs": "1",
        "csrfmiddlewaretoken": _csrf(admin_client, url),
    }
    page = admin_client.post(url, fields, follow=True).content.decode()
    assert "missing.weights.h5" in page and not Job.objects.exists()


def test_promote_and_roll_back_submit_jobs(admin_client, active_model, candidate) -> None:
    url = f"/admin/search/modelversion/{candidate.pk}/promote/"
    page = admin_client.get(url).content.decode()
    assert "v7</strong> keeps answering searches" in page
    response = admin_client.post(url, {"force": "on", "csrfmiddlewaretoken": _csrf(admin_client, url)})
    job = Job.objects.get(kind="reindex")
    assert response["Location"] == f"/admin/search/job/{job.pk}/change/"
    assert job.params == {"model": candidate.version, "force": True}

    url = "/admin/search/modelversion/rollback/"
    assert "no previous model" in admin_client.get(url).content.decode()
    admin_client.post(url, {"csrfmiddlewaretoken": _csrf(admin_client, url)})
    assert Job.objects.filter(kind="rollback").exists()


def test_the_job_page_follows_the_job_live(admin_client, active_model) -> None:
    job = job_submit(kind="index_pending", requested_by="someone")
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, done=3, total=8, log="step one\nstep two")
    page = admin_client.get(f"/admin/search/job/{job.pk}/change/").content.decode()
    assert f'data-status-url="/admin/search/job/{job.pk}/status.json"' in page
    assert "search/admin_job.js" in page and "step one\nstep two" in page
    assert '<progress id="job-progress" max="8" value="3">' in page and "Cancel job" in page
    status = admin_client.get(f"/admin/search/job/{job.pk}/status.json").json()
    assert status["state"] == "running" and (status["done"], status["total"], status["percent"]) == (3, 8, 38)
    assert status["log"] == "step one\nstep two" and status["finished"] is False
    assert status["serving"] == {"version": 7, "kind": "bootstrap", "label": "pretrained"}

    cancel = f"/admin/search/job/{job.pk}/cancel/"
    token = _csrf(admin_client, f"/admin/search/job/{job.pk}/change/")
    assert admin_client.get(cancel).status_code == 405
    admin_client.post(cancel, {"csrfmiddlewaretoken": token})
    job.refresh_from_db()
    assert job.cancel_requested and "cancel requested by admin (admin)" in job.log


def test_the_job_status_is_for_staff_only(client, django_user_model, active_model) -> None:
    job = job_submit(kind="rollback")
    url = f"/admin/search/job/{job.pk}/status.json"
    assert client.get(url).status_code == 302  # to the login page
    shopper = django_user_model.objects.create_user("shopper", password="pw-for-tests-only")
    client.force_login(shopper)
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_finished_reindex_shows_the_gate_verdict_and_the_plot(
    admin_client, active_model, candidate, tmp_path
) -> None:
    plot = tmp_path / "report.png"
    plot.write_bytes(PNG)
    candidate.plot_path = str(plot)
    candidate.status = ModelStatus.ACTIVE
    active_model.status = ModelStatus.RETIRED
    active_model.save()
    candidate.save()
    gate = {
        "queries": 4,
        "passed": True,
        "candidate": {"recall@1": 0.75, "recall@5": 1.0, "map@r": 0.6},
        "active": {"recall@1": 0.5, "recall@5": 1.0, "map@r": 0.4},
    }
    job = job_submit(kind="reindex", params={"model": candidate.version})
    Job.objects.filter(pk=job.pk).update(
        state=JobState.SUCCEEDED,
        result={
            "status": "promoted",
            "gate": gate,
            "model_version": 8,
            "previous_version": 7,
            "summary": "done",
        },
    )
    page = admin_client.get(f"/admin/search/job/{job.pk}/change/").content.decode()
    assert "Evaluation gate: promoted" in page
    assert re.search(r"<th>R@1</th><td>0.750</td><td>0.500</td>", page)
    assert re.search(r"<th>mAP@R</th><td>0.600</td><td>0.400</td>", page)
    assert "on 4 held-out photos" in page and "not worse" in page
    assert f'src="/admin/search/modelversion/{candidate.pk}/plot.png"' in page
    assert "v8 (trained on your catalog)" in page
    assert 'data-finished="1"' in page and "Cancel job" not in page


def test_the_search_api_says_which_model_answered(api_client, active_model) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api_client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", image_bytes())})
    assert response.status_code == 200
    assert (response.json()["model_version"], response.json()["model_kind"]) == (7, "bootstrap")


def test_the_index_page_says_how_a_collection_is_searched_and_queues_a_build(
    admin_client, active_model
) -> None:
    active_model.index = {
        "hnsw_ef": 256,
        "oversampling": 8.0,
        "recall_at_10": 0.9855,
        "points": 1_000_000,
        "indexed": 1_000_000,
    }
    active_model.save()
    listing = admin_client.get("/admin/search/modelversion/").content.decode()
    assert "hnsw_ef 256 (int8, 8x rescored) · recall@10 0.986 · 1000000/1000000 points" in listing
    url = f"/admin/search/modelversion/{active_model.pk}/optimize/"
    page = admin_client.get(url).content.decode()
    assert "Optimize the index of v7" in page and "0 points, 0 in a graph now" in page
    response = admin_client.post(url, {"csrfmiddlewaretoken": _csrf(admin_client, url)})
    job = Job.objects.get(kind="optimize_index")
    assert response.status_code == 302 and response["Location"].endswith(
        f"/admin/search/job/{job.pk}/change/"
    )
    assert job.params == {"model": active_model.version} and job.state == JobState.QUEUED


def test_a_collection_without_an_index_is_listed_as_exact(admin_client, active_model) -> None:
    assert "exact (no index built)" in admin_client.get("/admin/search/modelversion/").content.decode()
