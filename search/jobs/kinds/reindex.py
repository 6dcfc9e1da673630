"""The "reindex" kind: fill a candidate's collection (resuming from the cursor of a run that died),
gate it against the serving model, and promote it when it is not worse (or when forced). The reindex's
state lives in this job's result (search/services/reindex.py): one record per reindex."""

from __future__ import annotations

from typing import Any

from search.jobs.progress import Rate
from search.jobs.registry import JobContext, job_kind
from search.jobs.steps import calibrate_if_needed, check_model
from search.models import REINDEX_KIND, Job, ModelVersion, ReindexStatus
from search.services import reindex
from search.services.gate import gate_line, gate_verdict


def _check_reindex(params: dict[str, Any]) -> dict[str, Any]:
    return {"model": check_model(params), "force": bool(params.get("force", False))}


def _filled(job: Job) -> int:
    return job.result.get("indexed", 0) + job.result.get("failed", 0)


@job_kind(REINDEX_KIND, label="Reindex and promote", resumable=True, check=_check_reindex, unit="images")
def run_reindex(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Fill the candidate's collection (resuming from the cursor of a run that died), gate, promote."""
    if job.result.get("model_version"):
        ctx.log(f"resuming reindex at {_filled(job)}/{job.result.get('total', 0)}")
    else:
        reindex.reindex_start(job)
        state = job.result
        previous = f" (serving now: v{state['previous_version']})" if state.get("previous_version") else ""
        collection = ModelVersion.objects.get(version=state["model_version"]).collection
        ctx.log(f"filling {collection} with {state['total']} images for v{state['model_version']}{previous}")
    ctx.progress(_filled(job), job.result["total"])
    rate = Rate("images")
    rate.update(_filled(job))

    def on_batch(current: Job) -> None:
        rate.update(_filled(current))
        ctx.progress(_filled(current), current.result["total"])
        if rate.due():
            ctx.log(f"filled {_filled(current)}/{current.result['total']} images, {rate.text()}")
        ctx.check_cancelled()

    def log_line(line: str) -> None:
        ctx.log(line)
        ctx.check_cancelled()

    reindex.reindex_fill(job, on_batch=on_batch, log_line=log_line)
    state = job.result
    if rate.per_s() is not None:
        ctx.log(f"filled at {rate.text()}")
    ctx.log(f"evaluation gate: {gate_verdict(state['gate'])}; {state['status']}")
    promoted = state["status"] == ReindexStatus.PROMOTED
    summary = (
        f"Reindex job {job.pk} {state['status']}: v{state['model_version']} "
        f"{'serves now' if promoted else 'was not promoted'}; {state['indexed']} indexed, "
        f"{state['failed']} failed. Gate: {gate_line(state['gate'])}"
    )
    if state["status"] == ReindexStatus.REJECTED:
        summary += " Use --force (or the admin's forced promotion) to promote anyway."
    if promoted:
        calibrate_if_needed(ctx)
    return {**state, "ok": promoted, "summary": summary}
