"""Steps that more than one kind of job takes (search/jobs/kinds/ modules share them through here, never
through each other): checking a model parameter, indexing a list of images with progress and pace,
calibrating a serving model that has no calibration, and queueing the compact pretrained model once due.
"""

from __future__ import annotations

from typing import Any

from ml.serving import EmbedderUnavailable
from search import selectors
from search.errors import NoActiveModel
from search.jobs.progress import Rate
from search.jobs.records import job_submit
from search.jobs.registry import JobContext, JobError
from search.models import Job, JobState, ModelVersion
from search.services import compact
from search.services.indexing import IndexOutcome, index_pending_images
from search.vector_store import VectorStoreUnavailable

# Indexing an import's leftovers may wait for later: the images stay pending for the sweeper.
TRANSIENT = (NoActiveModel, VectorStoreUnavailable, EmbedderUnavailable)
COMPACT_KIND = "compact_pretrained"


def check_model(params: dict[str, Any]) -> int | None:
    """The ``model`` parameter: None (the kind's default) or the number of a model version."""
    version = params.get("model")
    if version is not None and (
        not isinstance(version, int) or not ModelVersion.objects.filter(version=version).exists()
    ):
        raise JobError(f"No model version {version}; see the admin's Model versions list.", "model")
    return version


def index_chunks(
    image_ids: list[str], ctx: JobContext, *, done: int = 0, total: int | None = None
) -> tuple[int, int]:
    """Index ``image_ids`` through the batched pipeline with progress and pace; (indexed, failed)."""
    total = len(image_ids) + done if total is None else total
    rate = Rate("images")
    rate.update(done)
    counted = done

    def on_batch(step: IndexOutcome) -> None:
        nonlocal counted
        counted += len(step.indexed) + len(step.failed)
        rate.update(counted)
        ctx.progress(counted, total)
        if rate.due():
            ctx.log(f"indexed {counted}/{total} images, {rate.text()}")
        ctx.check_cancelled()

    ctx.check_cancelled()
    outcome = index_pending_images(image_ids, on_batch=on_batch)
    ctx.progress(done + len(image_ids), total)  # skipped (already indexed) and vanished ones count too
    if rate.per_s() is not None:
        ctx.log(f"indexed {len(outcome.indexed)} images, {rate.text()}")
    return len(outcome.indexed), len(outcome.failed)


def calibrate_if_needed(ctx: JobContext) -> None:
    """A serving model with no calibration (the pretrained one) is calibrated from the catalog once it
    has enough indexed photos, so its answers say "same" and "no match" too."""
    from search.services.calibration import calibrate_from_catalog

    model = selectors.active_model()
    if model is None or model.calibration:
        return
    try:
        fitted = calibrate_from_catalog(model)
    except TRANSIENT as exc:
        ctx.log(f"calibration later ({exc})")
        return
    if fitted is not None:
        model.refresh_from_db(fields=["calibration"])
        ctx.log(
            f"calibrated v{model.version} on {fitted.queries} queries ({model.calibration.get('source')}): "
            f"'same' from score {fitted.same:.3f} "
            f"(precision {fitted.precision:.3f}, unseen products answered 'no match' {fitted.no_match_unseen:.3f})"
        )


def queue_compact_if_due(ctx: JobContext) -> None:
    """After an import: a raw pretrained model with enough catalog photos now gets its compact one."""
    waiting = Job.objects.filter(kind=COMPACT_KIND, state__in=[JobState.QUEUED, JobState.RUNNING]).exists()
    if waiting or not compact.compact_due():
        return
    follow = job_submit(kind=COMPACT_KIND, requested_by=f"job {ctx.job_id} (import)")
    ctx.log(f"the catalog has enough photos for compact pretrained vectors: submitted job {follow.pk}")
