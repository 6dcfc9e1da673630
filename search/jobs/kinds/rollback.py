"""The "rollback" kind: the model that served before serves again."""

from __future__ import annotations

from typing import Any

from search.jobs.registry import JobContext, job_kind
from search.models import Job
from search.services import reindex


@job_kind("rollback", label="Roll back")
def run_rollback(job: Job, ctx: JobContext) -> dict[str, Any]:
    result = reindex.rollback()
    summary = (
        f"Active model is v{result.restored.version} again (was v{result.replaced.version}); "
        f"{result.missing_enqueued} image(s) uploaded since were queued for indexing."
    )
    return {
        "model_version": result.restored.version,
        "replaced": result.replaced.version,
        "missing_enqueued": result.missing_enqueued,
        "summary": summary,
    }
