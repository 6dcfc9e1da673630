"""Training as a job: `manage.py train --no-wait` queues it, the store owner's runner (the web process)
starts a real training process at low priority, follows its output and epochs, records the candidate,
and with --then-promote hands the candidate to a reindex job; a cancel stops the training process."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from catalog import services
from search import selectors
from search.jobs.records import job_cancel
from search.models import Job, JobState, ModelKind, ModelStatus, ModelVersion
from tests.fixtures.images import image_bytes
from tests.support.celery_worker import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 60, 220), (230, 210, 20)]
# The smallest real training run: random weights, 32 px, one epoch of 2 steps on cached features.
TINY = [
    # MobileNetV2 at 32 px with random weights still gives non-zero features (a 32 px Lite0 may not).
    *("--backbone", "mobilenet_v2_035", "--weights", "none", "--image-size", "32", "--embedding-dim", "8"),
    *("--trainable-blocks", "5"),
    *("--epochs", "1", "--steps-per-epoch", "2"),
    *("--batch-p", "2", "--batch-k", "2", "--unfreeze-layers", "5", "--val-fraction", "0.25"),
]


@pytest.fixture
def training_owner(active_model, settings, tmp_path, monkeypatch):
    """Four products with four photos each, and this process running jobs as the web process does. The
    training process reads its settings from the environment the runner gives it."""
    from search.embedders import reset_embedders
    from search.vector_store import vector_store
    from workers.embedded import JobRunner

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings.base")
    settings.VAR_DIR = tmp_path / "var"
    reset_embedders()  # the trained model is a new v8: no embedder an earlier test loaded for its v8
    for n, colour in enumerate(COLOURS):
        product = services.product_create(sku=f"P{n}", title=f"product {n}")
        for k in range(4):
            data = image_bytes(color=colour, size=(40, 40), pattern=10 * n + k)
            services.product_image_add(product=product, data=data)
    vector_store()
    runner = JobRunner(poll_s=0.1).start()
    yield runner
    runner.stop()


@pytest.mark.slow  # a real training process: about 45 s here (TensorFlow start, one epoch, export)
def test_a_queued_training_runs_in_its_own_low_priority_process(training_owner, active_model) -> None:
    out = StringIO()
    call_command("train", *TINY, "--no-wait", "--then-promote", stdout=out)
    job = Job.objects.get(kind="train")
    assert out.getvalue().startswith(f"Job {job.pk} (train) queued for the background runner")
    assert job.params["then_promote"] is True and job.params["options"]["image_size"] == 32

    wait_until(
        lambda: Job.objects.get(pk=job.pk).finished,
        120,
        "the training job",
        lambda: Job.objects.get(pk=job.pk).log,
    )
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.log
    assert job.runner.endswith(":lookalike-jobs-process")
    assert "at nice 10" in job.log  # the training process lowered its own priority (JOB_TRAIN_NICE)
    assert (job.done, job.total) == (3, 3)  # 1 epoch, evaluating, exporting
    assert f"Candidate model v{job.result['model_version']}" in job.log  # its output is the job's log
    model = ModelVersion.objects.get(version=job.result["model_version"])
    assert model.kind == ModelKind.TRAINED and model.image_size == 32 and model.embedding_dim == 8
    assert model.metrics["recall@1"] == job.result["recall@1"]

    # Then promote: a reindex job for the new candidate, run by the store's runner thread.
    promote = Job.objects.get(pk=job.result["promote_job"])
    assert promote.kind == "reindex" and promote.params == {"model": model.version, "force": False}
    assert promote.requested_by == f"job {job.pk} (train, then promote)"
    wait_until(lambda: Job.objects.get(pk=promote.pk).finished, 60, "the promotion")
    promote.refresh_from_db()
    assert promote.state == JobState.SUCCEEDED, promote.error
    assert promote.result["status"] in ("promoted", "rejected") and "candidate" in promote.result["gate"]
    model.refresh_from_db()
    served = selectors.active_model()
    if promote.result["status"] == "promoted":
        assert served.pk == model.pk
    else:
        assert served.pk == active_model.pk and model.status == ModelStatus.REJECTED


def test_cancelling_a_training_job_stops_its_process(training_owner) -> None:
    call_command("train", *TINY, "--no-wait", stdout=StringIO())
    job = Job.objects.get(kind="train")
    wait_until(lambda: "training process" in Job.objects.get(pk=job.pk).log, 60, "the training process")
    pid = int(Job.objects.get(pk=job.pk).log.split("training process ", 1)[1].split()[0])
    job_cancel(job_id=job.pk, by="the test")
    wait_until(lambda: Job.objects.get(pk=job.pk).finished, 30, "the cancel")
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert not ModelVersion.objects.filter(kind=ModelKind.TRAINED).exists()
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
