"""One owner per embedded store: a second process never opens it (nor dies with a traceback); its
command queues a job for the owner instead (tests/search/test_job_handoff.py follows such jobs)."""

from __future__ import annotations

import pytest

from search.models import Job, JobState
from search.vector_store import vector_store
from tests.search.test_job_handoff import manage

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_process_queues_its_work_for_the_owner(active_model, vector_store_path, media_root) -> None:
    vector_store()  # this process owns the store now
    for command, kind in ((["index_pending"], "index_pending"), (["reconcile_index"], "reconcile")):
        result = manage(*command, "--no-wait")
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        job = Job.objects.get(kind=kind)
        assert result.stdout.splitlines() == [
            f"Job {job.pk} ({kind}) queued for the process that owns the vector store (the web server's job runner).",
            f"Not waiting; follow it in the admin at /admin/search/job/{job.pk}/change/",
        ]
        assert job.state == JobState.QUEUED and job.requested_by == f"manage.py {command[0]}"
