"""The "optimize_index" kind: build the graph of a model's collection and choose its beam."""

from __future__ import annotations

from typing import Any

from search import selectors
from search.jobs.registry import JobContext, JobError, job_kind
from search.jobs.steps import check_model
from search.models import Job, ModelVersion


def _check_optimize(params: dict[str, Any]) -> dict[str, Any]:
    return {"model": check_model(params)}


@job_kind("optimize_index", label="Optimize the index", resumable=True, check=_check_optimize)
def run_optimize_index(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Build the graph of a model's collection (the active one by default) and choose its beam."""
    from search.services.index_building import beam_text, index_optimize

    version = job.params.get("model")
    model = ModelVersion.objects.get(version=version) if version is not None else selectors.active_model()
    if model is None:
        raise JobError("No active model: nothing to optimize.", "model")

    def log_line(line: str) -> None:
        ctx.log(line)
        ctx.check_cancelled()  # a cancelled build stops its child process and keeps the live index

    ctx.progress(0, 2)
    index = index_optimize(model, log_line=log_line)
    ctx.progress(2, 2)
    beam = model.search_beam
    if beam is not None:
        how = (
            f"graph over {index['indexed']} points, {beam_text(beam)} (recall@10 {index['recall_at_10']:.3f})"
        )
    elif index.get("indexed"):
        how = f"graph over {index['indexed']} points, but no beam reached the recall target: searched exactly"
    else:
        how = "searched exactly (too small for a graph to pay)"
    summary = (
        f"Index of v{model.version} ({index['points']} points): {how}; built in {index['build_s']:.0f} s."
    )
    return {"model_version": model.version, "index": index, "summary": summary}
