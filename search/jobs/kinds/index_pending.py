"""The "index_pending" kind: index the given images, or every image due for indexing."""

from __future__ import annotations

from typing import Any

from search import selectors
from search.jobs.registry import JobContext, JobError, job_kind
from search.jobs.steps import index_chunks
from search.models import Job


def _check_index(params: dict[str, Any]) -> dict[str, Any]:
    ids = params.get("image_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise JobError("image_ids must be a list of image ids.", "image_ids")
    return {"image_ids": ids}


@job_kind("index_pending", label="Index pending images", resumable=True, check=_check_index, unit="images")
def run_index_pending(job: Job, ctx: JobContext) -> dict[str, Any]:
    due = job.params.get("image_ids") or selectors.due_for_sweep(include_fresh=True)
    ctx.progress(0, len(due))
    indexed, failed = index_chunks(due, ctx)
    return {"indexed": indexed, "failed": failed, "summary": f"Indexed {indexed} image(s); {failed} failed."}
