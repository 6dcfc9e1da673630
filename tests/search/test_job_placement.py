"""Who runs a job is the workers app's choice (embedded runner or Celery), made in one place
(workers/placement.py) and handed to search, which never reads Celery's settings itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.jobs.placement import BROKER, EMBEDDED, job_placement, placement

SEARCH = Path(__file__).resolve().parents[2] / "search"


def test_search_never_reads_the_celery_eager_setting() -> None:
    readers = [
        str(path.relative_to(SEARCH.parent))
        for path in sorted(SEARCH.rglob("*.py"))
        if "CELERY_TASK_ALWAYS_EAGER" in path.read_text(encoding="utf-8")
    ]
    assert readers == [], "search asks search.jobs.placement.placement(); the workers app chooses"


def test_the_placement_follows_the_workers_choice(settings) -> None:
    assert placement() is EMBEDDED  # the test settings: no broker
    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert placement() is BROKER
    assert job_placement("reindex") == "owner"  # handed to the workers
    assert job_placement("import") == "here"  # reads a file the workers may not see


@pytest.mark.django_db
def test_embedded_a_job_that_needs_no_store_runs_here() -> None:
    assert job_placement("train") == "here"
