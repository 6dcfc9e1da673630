"""The job table's life cycle: submit, an atomic claim, progress and a bounded log, cancel, the end
states, and jobs whose runner died (re-queued when they can resume, else failed saying why)."""

from __future__ import annotations

import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from search import selectors
from search.jobs import progress, records, registry
from search.jobs.records import job_submit
from search.jobs.registry import JobError, job_kind
from search.jobs.runner import job_run
from search.models import Job, JobState, ReindexStatus
from tests.support.reindex import reindex_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_kind():
    """A kind registered by the test, as a new feature would add one: steps through ``params["steps"]``
    and fails when told to."""
    calls = []

    @job_kind("test-steps", label="Test steps", resumable=True)
    def run(job, ctx):
        steps = job.params["steps"]
        for n in range(steps):
            ctx.check_cancelled()
            ctx.progress(n + 1, steps)
            ctx.log(f"step {n + 1}")
            calls.append(n)
            if job.params.get("cancel_at") == n:
                records.job_cancel(job_id=job.pk, by="the test")
                ctx._cancel.set()  # what the heartbeat would notice within HEARTBEAT_S
        if job.params.get("fail"):
            raise ValueError("the input was wrong\nin two lines")
        return {"summary": f"{steps} steps", "steps": steps}

    yield calls
    registry._KINDS.pop("test-steps")


def test_a_job_runs_to_its_end_with_progress_and_a_summary(test_kind) -> None:
    job = job_submit(kind="test-steps", params={"steps": 3}, requested_by="the test")
    assert job.state == JobState.QUEUED and job.attempts == 0
    claimed = records.job_claim(kinds=["test-steps"])
    assert claimed.pk == job.pk and claimed.state == JobState.RUNNING and claimed.attempts == 1
    assert records.job_claim(kinds=["test-steps"]) is None  # nothing else queued
    done = job_run(claimed)
    assert done.state == JobState.SUCCEEDED
    assert (done.done, done.total) == (3, 3)
    assert done.result == {"summary": "3 steps", "steps": 3}
    assert done.log.splitlines() == ["step 1", "step 2", "step 3"] and done.log_lines == 3
    assert done.started_at <= done.finished_at and done.error == ""


def test_a_failing_runner_fails_its_job_with_one_line(test_kind) -> None:
    job = job_run(job_submit(kind="test-steps", params={"steps": 1, "fail": True}, claim=True))
    assert job.state == JobState.FAILED
    assert job.error == "the input was wrong in two lines"
    assert job.log.splitlines()[-1] == "failed: the input was wrong in two lines"


def test_cancel_a_queued_job_at_once_and_a_running_one_between_steps(test_kind) -> None:
    queued = job_submit(kind="test-steps", params={"steps": 2})
    assert records.job_cancel(job_id=queued.pk).state == JobState.CANCELLED
    assert records.job_claim(job_id=queued.pk) is None  # a cancelled job is never run

    running = job_run(job_submit(kind="test-steps", params={"steps": 5, "cancel_at": 1}, claim=True))
    assert running.state == JobState.CANCELLED
    assert test_kind == [0, 1]  # stopped before step 3
    assert "cancel requested by the test" in running.log and running.log.splitlines()[-1] == "cancelled"


def test_the_log_keeps_a_bounded_tail_and_counts_every_line(test_kind) -> None:
    job = job_submit(kind="test-steps", params={"steps": 1})
    records.job_log(job.pk, [f"line {n}" for n in range(records.LOG_LINES + 50)])
    records.job_log(job.pk, ["x" * 5000])
    job.refresh_from_db()
    lines = job.log.splitlines()
    assert len(lines) == records.LOG_LINES and lines[0] == "line 51"
    assert lines[-1] == "x" * records.LOG_LINE_CHARS
    assert job.log_lines == records.LOG_LINES + 51


def test_the_log_keeps_only_the_latest_state_of_each_progress_bar(test_kind) -> None:
    """A training process's bars reach the log through a pipe, each redraw a line of its own: tqdm's
    (with ANSI colours or not) and Keras's. The log keeps one line per bar, at its latest state; other
    lines, and a bar that comes back after another line, stay."""
    job = job_submit(kind="test-steps", params={"steps": 1})
    decoding = [
        f"decoding train: {p:3d}%|{'#' * (p // 10):<10}| {p * 16 // 100}/16 [00:01<00:02]"
        for p in (0, 50, 100)
    ]
    keras = [
        f"\x1b[1m{n:2d}/17\x1b[0m \x1b[32m{'━' * n}\x1b[0m 2s 200ms/step - loss: 0.5" for n in range(1, 18)
    ]
    records.job_log(job.pk, ["training process 1", *decoding[:2]])
    records.job_log(job.pk, [decoding[2], "caching 64 views", *keras, "epoch 1: val Recall@1 0.25", keras[0]])
    job.refresh_from_db()
    assert job.log.splitlines() == [
        "training process 1",
        decoding[2],
        "caching 64 views",
        keras[-1],
        "epoch 1: val Recall@1 0.25",
        keras[0],
    ]
    assert job.log_lines == 6  # a refresh adds no line: a follower prints only lines that are new
    # Keras's per-epoch summary (verbose=2) is not a bar: each epoch's line stays.
    records.job_log(job.pk, ["17/17 - 3s - 200ms/step - loss: 0.5", "17/17 - 3s - 190ms/step - loss: 0.4"])
    job.refresh_from_db()
    assert job.log.splitlines()[-2:] == [
        "17/17 - 3s - 200ms/step - loss: 0.5",
        "17/17 - 3s - 190ms/step - loss: 0.4",
    ]


def test_submission_checks_kind_and_params(active_model, candidate) -> None:
    with pytest.raises(JobError, match="Unknown job kind 'nope'"):
        job_submit(kind="nope")
    with pytest.raises(JobError, match="No model version 99"):
        job_submit(kind="reindex", params={"model": 99})
    with pytest.raises(JobError, match="argument --loss: invalid choice: 'wishful'"):
        job_submit(kind="train", params={"options": {"loss": "wishful"}})
    with pytest.raises(JobError, match="unrecognized arguments: --colour"):
        job_submit(kind="train", params={"options": {"colour": "red"}})
    train = job_submit(kind="train", params={"options": {"epochs": "2", "weights": "none"}})
    assert train.params == {"options": {"epochs": 2, "weights": "none"}, "then_promote": False}
    assert not Job.objects.filter(kind="nope").exists()


@pytest.mark.django_db(transaction=True)
def test_two_runners_never_claim_one_job() -> None:
    job = job_submit(kind="rollback")
    barrier = threading.Barrier(6)
    won: list[int] = []

    def claim() -> None:
        try:
            barrier.wait()
            if records.job_claim(kinds=["rollback"]) is not None:
                won.append(1)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [1]
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.attempts == 1


def _left_running(kind: str, *, attempts: int = 1, **fields) -> Job:
    old = timezone.now() - timedelta(minutes=10)
    job = job_submit(kind=kind, **fields)
    Job.objects.filter(pk=job.pk).update(
        state=JobState.RUNNING, runner="gone:4242:t", heartbeat_at=old, started_at=old, attempts=attempts
    )
    return Job.objects.get(pk=job.pk)


def test_a_dead_runners_jobs_are_requeued_or_failed_with_the_reason(active_model, candidate) -> None:
    resumable = _left_running("index_pending")
    training = _left_running("train", params={"options": {"weights": "none"}})
    worn_out = _left_running("reindex", attempts=records.MAX_ATTEMPTS, params={"model": candidate.version})
    # Begun: its result holds the reindex's state, so the candidate's collection takes writes.
    Job.objects.filter(pk=worn_out.pk).update(
        result={"model_version": candidate.version, "status": ReindexStatus.RUNNING, "total": 3}
    )
    assert selectors.reindex_in_progress().pk == worn_out.pk
    alive = job_submit(kind="rollback", claim=True)  # beat just now

    assert records.job_recover_stale() == [resumable.pk]
    resumable.refresh_from_db()
    assert resumable.state == JobState.QUEUED and resumable.runner == ""
    assert "(gone:4242:t) stopped answering" in resumable.log and "queued again (run 2 of 3)" in resumable.log
    training.refresh_from_db()
    assert training.state == JobState.FAILED
    assert training.error.startswith("Stopped: the process running it (gone:4242:t) stopped answering at ")
    assert training.error.endswith("this kind of job cannot resume; submit it again.")
    worn_out.refresh_from_db()
    assert worn_out.state == JobState.FAILED and "given up after 3 runs" in worn_out.error
    assert selectors.reindex_in_progress() is None  # ended with its job: a new reindex may start
    assert Job.objects.get(pk=alive.pk).state == JobState.RUNNING
    assert records.job_recover_stale() == []


@pytest.mark.django_db(transaction=True)
def test_a_reindex_left_by_a_dead_runner_resumes_from_its_cursor(
    indexed_catalog, active_model, candidate
) -> None:
    """The web process died mid-reindex: after the restart its runner re-queues the job and finishes
    the same reindex from its cursor (kept on the job), without filling the first images again."""
    from search.selectors import image_ids_in_order
    from search.services.indexing import fill_collection
    from search.vector_store import vector_store
    from workers.embedded import JobRunner

    job = reindex_start(candidate, force=True)
    first = image_ids_in_order(limit=1)
    fill_collection(first, candidate)
    old = timezone.now() - timedelta(minutes=10)
    Job.objects.filter(pk=job.pk).update(
        result={**job.result, "cursor": first[0], "indexed": 1},
        runner="gone:4242:t",
        heartbeat_at=old,
        started_at=old,
    )

    vector_store()
    runner = JobRunner(poll_s=0.1)
    runner.RECOVER_EVERY_S = 0.0
    runner.start()
    try:
        from tests.support.celery_worker import wait_until

        wait_until(lambda: Job.objects.get(pk=job.pk).finished, 60, "the resumed reindex")
    finally:
        runner.stop()
    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.attempts == 2 and "resuming reindex" in job.log and "at 1/3" in job.log
    assert job.result["status"] == ReindexStatus.PROMOTED
    assert (job.result["indexed"], job.result["total"]) == (3, 3) and (job.done, job.total) == (3, 3)
    assert Job.objects.filter(kind="reindex").count() == 1


def test_a_command_runs_the_job_itself_when_nothing_else_owns_the_store(
    indexed_catalog, active_model
) -> None:
    out = StringIO()
    call_command("index_pending", stdout=out)
    job = Job.objects.get()
    assert job.kind == "index_pending" and job.state == JobState.SUCCEEDED
    assert job.runner.split(":")[1] == str(__import__("os").getpid())  # this process ran it
    assert out.getvalue().strip().splitlines()[-1] == "Indexed 0 image(s); 0 failed."


def test_a_failed_reindex_is_no_longer_in_progress(
    indexed_catalog, active_model, candidate, tmp_path
) -> None:
    from search.embedders import reset_embedders

    candidate.export_path = str(tmp_path / "gone")  # its files were deleted: the fill cannot embed
    candidate.save()
    reset_embedders()  # an earlier test may have loaded v8 from where its files were
    job = job_run(job_submit(kind="reindex", params={"model": candidate.version}, claim=True))
    assert job.state == JobState.FAILED and "gone" in job.error and "\n" not in job.error
    assert job.result["model_version"] == candidate.version  # it had begun
    assert selectors.reindex_in_progress() is None  # a new reindex may start


def test_the_demos_training_is_queued_once(active_model, candidate) -> None:
    out = StringIO()
    call_command("train", "--weights", "none", "--no-wait", "--then-promote", "--unless-trained", stdout=out)
    call_command("train", "--weights", "none", "--no-wait", "--then-promote", "--unless-trained", stdout=out)
    job = Job.objects.get()  # the second run found it queued
    assert out.getvalue().splitlines()[-1] == f"Job {job.pk} is training already; not training again."
    assert job.params == {"options": {"weights": "none"}, "then_promote": True}
    records.job_cancel(job_id=job.pk)
    from search.services.model_versions import model_activate
    from search.vector_store import vector_store

    vector_store().ensure_collection(candidate.collection, candidate.embedding_dim)
    model_activate(candidate)  # a model trained on the catalog serves
    call_command("train", "--no-wait", "--unless-trained", stdout=out)
    assert (
        out.getvalue().splitlines()[-1] == "A model trained on the catalog serves already (v8); not training."
    )
    assert Job.objects.count() == 1


def test_index_progress_carries_a_pace(active_model, media_root) -> None:
    from catalog import services as catalog_services
    from tests.fixtures.images import image_bytes

    product = catalog_services.product_create(sku="R", title="R")
    ids = [
        str(catalog_services.product_image_add(product=product, data=image_bytes(pattern=i + 1)).image.pk)
        for i in range(3)
    ]
    job = job_run(job_submit(kind="index_pending", params={"image_ids": ids}, claim=True))
    assert job.state == JobState.SUCCEEDED and (job.done, job.total) == (3, 3)
    assert "images/s" in job.log.splitlines()[-1]


def test_rate_counts_from_its_first_update_and_says_its_unit(monkeypatch) -> None:
    clock = iter([100.0, 102.0, 102.0, 102.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    rate = progress.Rate("images", every_s=1.0)
    rate.update(50)  # a resumed job: what earlier runs did is not this run's pace
    rate.update(90)
    assert rate.per_s() == 20.0 and rate.text() == "20.0 images/s" and rate.count == 90
    assert rate.due() and not rate.due()
