"""Jobs with a broker: the machine's Redis and a real `celery worker` process run them (`lookalike.run_job`
on the reindex queue); a command hands its job to the workers and follows it to the end."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone

from search import selectors
from search.jobs import records as jobs
from search.models import Job, JobState
from tests.search.conftest import (  # noqa: F401  (the fixtures)
    CANDIDATE_VERSION,
    candidate,
    exported_candidate,
    indexed_catalog,
)
from tests.support.celery_worker import wait_until
from tests.workers.test_worker_integration import make_worker  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_manage_reindex_hands_the_job_to_a_worker_and_follows_it(
    indexed_catalog,  # noqa: F811
    make_worker,  # noqa: F811
    active_model,
    candidate,  # noqa: F811
) -> None:
    worker = make_worker()  # the worker owns the embedded store from now on
    worker.start()
    out = StringIO()
    call_command("reindex", "--model", str(CANDIDATE_VERSION), "--force", stdout=out, stderr=StringIO())
    job = Job.objects.get()
    text = out.getvalue()
    assert f"Job {job.pk} (reindex) queued for the Celery workers." in text
    assert "filling images_8 with 3 images for v8 (serving now: v7)" in text  # its log, followed here
    assert text.strip().splitlines()[-1].startswith(f"Reindex job {job.pk} promoted: v8 serves now")
    assert job.state == JobState.SUCCEEDED and job.runner.split(":")[1] != str(__import__("os").getpid())
    assert selectors.active_model().version == CANDIDATE_VERSION
    assert redis.Redis.from_url(worker.broker_url).llen("reindex") == 0


def test_a_job_whose_runner_died_is_queued_again_for_the_workers(
    make_worker,  # noqa: F811
    active_model,
    media_root,
) -> None:
    from catalog import services
    from tests.fixtures.images import image_bytes

    product = services.product_create(sku="P", title="p")
    image = services.product_image_add(product=product, data=image_bytes(), announce=False).image
    job = jobs.job_submit(kind="index_pending", params={"image_ids": [str(image.pk)]})
    worker = make_worker()
    # A worker took it and died: running, and silent for ten minutes. Its Redis message is gone.
    old = timezone.now() - timedelta(minutes=10)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, heartbeat_at=old, attempts=1, runner="w:1:x")
    redis.Redis.from_url(worker.broker_url).delete("reindex")

    assert jobs.job_recover_stale() == [job.pk]  # what the beat task lookalike.recover_jobs does
    worker.start()
    wait_until(lambda: Job.objects.get(pk=job.pk).finished, 90, "the re-queued job", worker.log_tail)
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED and job.attempts == 2, job.error
    assert job.result["summary"] == "Indexed 1 image(s); 0 failed."
    image.refresh_from_db()
    assert image.index_status == "indexed"
