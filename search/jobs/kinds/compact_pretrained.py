"""The "compact_pretrained" kind: the pretrained model with compact vectors, as a candidate (then, by
default, a reindex job that promotes it through the gate)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from search.jobs.records import job_submit
from search.jobs.registry import JobContext, JobError, job_kind
from search.jobs.steps import COMPACT_KIND
from search.models import Job
from search.services import compact
from search.services.model_versions import compact_candidate_make


def _check_compact(params: dict[str, Any]) -> dict[str, Any]:
    weights = params.get("weights")
    if weights is not None and not isinstance(weights, str):
        raise JobError("weights must be a path or 'imagenet'.", "weights")
    return {"then_promote": bool(params.get("then_promote", True)), "weights": weights}


@job_kind(COMPACT_KIND, label="Compact the pretrained model", check=_check_compact)
def run_compact_pretrained(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Fit a projection on the catalog, export the pretrained model with it as a candidate, and (unless
    ``then_promote`` is off: a command that follows the reindex itself) hand it to a reindex job, which
    fills its collection, gates and promotes."""
    ctx.log(
        f"fitting a {compact.compact_dim()}-d projection on up to {settings.BOOTSTRAP_COMPACT_MAX_PHOTOS} "
        f"of the catalog's {compact.stored_photo_count()} photos"
    )
    try:
        model = compact_candidate_make(weights=job.params.get("weights"))
    except compact.CompactError as exc:
        raise JobError(exc.message) from exc
    fit = model.config["compact"]
    # Which fit it was: learned whitening (with its pairs) or PCA (too few products with two photos).
    how = fit.get("method", "pca")
    if how == "whitening":
        how += f" from {fit['pairs']} pairs of {fit['paired_products']} products' photos"
    ctx.log(
        f"v{model.version}: {fit['in_dim']}-d -> {fit['out_dim']}-d by {how} on {fit['samples']} photos "
        f"({100 * fit['explained']:.1f}% of the variance kept), fitted in {fit['fit_s']} s"
    )
    made = f"Made v{model.version}, the pretrained model with {fit['out_dim']}-d vectors"
    result = {"model_version": model.version, "compact": fit, "summary": f"{made} (a candidate)."}
    if job.params.get("then_promote", True):
        follow = job_submit(
            kind="reindex", params={"model": model.version}, requested_by=f"job {job.pk} (compact pretrained)"
        )
        result["promote_job"] = follow.pk
        result["summary"] = f"{made}; job {follow.pk} reindexes to it and promotes it if the gate passes."
    return result
