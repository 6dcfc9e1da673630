"""The "text_index" kind: rebuild the text index (one sparse point per product) from the catalog."""

from __future__ import annotations

from typing import Any

from search.jobs.registry import JobContext, job_kind
from search.models import Job


@job_kind("text_index", label="Rebuild the text index", resumable=True, unit="products")
def run_text_index(job: Job, ctx: JobContext) -> dict[str, Any]:
    from search.services.text_index import rebuild_text_index

    outcome = rebuild_text_index(progress=lambda written: ctx.log(f"{written} product(s) written"))
    return {
        "written": outcome.written,
        "removed": outcome.removed,
        "summary": f"Text index: {outcome.written} product(s) written, {outcome.removed} gone removed.",
    }
