"""The kinds of job and their runner functions (the registry is search/services/jobs.py).

Every runner is a thin adapter over a service: it reads its params, reports progress and log lines
through ``ctx``, checks for cancellation between steps, and returns a result whose ``summary`` is the
one line a command prints at the end (``ok: False`` marks an outcome to show as a warning).
A new kind is one more decorated function here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from catalog import selectors as catalog_selectors
from ml.evaluate import METRIC_LABELS, RECALL_AT_1
from ml.serving import EmbedderUnavailable
from search import selectors
from search.errors import NoActiveModel
from search.models import Job, JobState, ModelVersion, ReindexJob, ReindexStatus
from search.services import compact, reindex
from search.services.indexing import IndexOutcome, index_pending_images
from search.services.jobs import JobCancelled, JobContext, JobError, Rate, job_kind, job_submit
from search.services.training_jobs import check_train_params, run_train
from search.vector_store import VectorStoreUnavailable

MAX_ERRORS_KEPT = 200  # rejected manifest lines kept on an import job's result
# Indexing an import's leftovers may wait for later: the images stay pending for the sweeper.
TRANSIENT = (NoActiveModel, VectorStoreUnavailable, EmbedderUnavailable)

# Registered here too so every kind is defined in this one module; the runner lives with the code
# that starts and follows the training process.
job_kind("train", label="Train a candidate", needs_store=False, lane="process", check=check_train_params)(
    run_train
)


# --- reindex, rollback ------------------------------------------------------------------------------


def _check_model(params: dict[str, Any]) -> int | None:
    version = params.get("model")
    if version is not None and (
        not isinstance(version, int) or not ModelVersion.objects.filter(version=version).exists()
    ):
        raise JobError(f"No model version {version}; see the admin's Model versions list.", "model")
    return version


def _check_reindex(params: dict[str, Any]) -> dict[str, Any]:
    return {"model": _check_model(params), "force": bool(params.get("force", False))}


def _abandon_reindex(job: Job, error: str) -> None:
    if job.result.get("reindex_job"):
        reindex.reindex_fail(job.result["reindex_job"], error)


def gate_verdict(gate: dict[str, Any]) -> str:
    """The gate's verdict in a word or two: passed, advice only (compared on augmented views), or worse."""
    if gate.get("passed"):
        return "passed"
    return "advice only" if gate.get("advice_only") else "worse"


def gate_line(gate: dict[str, Any]) -> str:
    """The evaluation gate's verdict in one line (the admin shows the same numbers as a table)."""
    if "candidate" not in gate:
        return "no active model to compare with: promoted without a comparison."
    if not gate.get("queries"):
        return "no held-out photo has another photo of its product to find: nothing to compare, passed."

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "—"

    new, old = gate["candidate"], gate["active"]
    if gate.get("advice_only"):
        return (
            f"on {gate.get('queries', 0)} augmented views, candidate vs active: R@1 {fmt(new.get(RECALL_AT_1))} "
            f"vs {fmt(old.get(RECALL_AT_1))}: {gate['advice_only']}."
        )
    compared = ", ".join(
        f"{label} {fmt(new.get(name))} vs {fmt(old.get(name))}" for name, label in METRIC_LABELS.items()
    )
    return (
        f"on {gate.get('queries', 0)} held-out photos, candidate vs active: {compared}: {gate_verdict(gate)}."
    )


@job_kind(
    "reindex",
    label="Reindex and promote",
    resumable=True,
    check=_check_reindex,
    on_abandon=_abandon_reindex,
    unit="images",
)
def run_reindex(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Fill the candidate's collection (resuming from the cursor of a run that died), gate, promote."""
    existing = job.result.get("reindex_job")
    if existing:
        work = ReindexJob.objects.select_related("model_version").get(pk=existing)
        ctx.log(f"resuming reindex {work.pk} at {work.done + work.failed}/{work.total}")
    else:
        target = None
        if job.params.get("model") is not None:
            target = ModelVersion.objects.get(version=job.params["model"])
        work = reindex.reindex_start(model=target, force=job.params.get("force", False))
        ctx.set_result({"reindex_job": work.pk})
        previous = f" (serving now: v{work.previous_version.version})" if work.previous_version else ""
        ctx.log(
            f"filling {work.model_version.collection} with {work.total} images for "
            f"v{work.model_version.version}{previous}"
        )
    ctx.progress(work.done + work.failed, work.total)
    rate = Rate("images")
    rate.update(work.done + work.failed)

    def on_batch(current: ReindexJob) -> None:
        current.refresh_from_db()
        rate.update(current.done + current.failed)
        ctx.progress(current.done + current.failed, current.total)
        if rate.due():
            ctx.log(f"filled {current.done + current.failed}/{current.total} images, {rate.text()}")
        ctx.check_cancelled()

    def log_line(line: str) -> None:
        ctx.log(line)
        ctx.check_cancelled()

    try:
        work = reindex.reindex_fill(work, on_batch=on_batch, log_line=log_line)
    except JobCancelled:
        reindex.reindex_fail(work.pk, "Cancelled.", status=ReindexStatus.CANCELLED)
        raise
    version = work.model_version.version
    if rate.per_s() is not None:
        ctx.log(f"filled at {rate.text()}")
    ctx.log(f"evaluation gate: {gate_verdict(work.gate)}; {work.status}")
    promoted = work.status == ReindexStatus.PROMOTED
    summary = (
        f"Reindex {work.pk} {work.status}: v{version} {'serves now' if promoted else 'was not promoted'}; "
        f"{work.done} indexed, {work.failed} failed. Gate: {gate_line(work.gate)}"
    )
    if work.status == ReindexStatus.REJECTED:
        summary += " Use --force (or the admin's forced promotion) to promote anyway."
    if promoted:
        _calibrate_if_needed(ctx)
    return {
        "reindex_job": work.pk,
        "status": work.status,
        "model_version": version,
        "previous_version": work.previous_version.version if work.previous_version else None,
        "gate": work.gate,
        "ok": promoted,
        "summary": summary,
    }


def _check_optimize(params: dict[str, Any]) -> dict[str, Any]:
    return {"model": _check_model(params)}


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


# --- compact pretrained vectors ----------------------------------------------------------------------

COMPACT_KIND = "compact_pretrained"


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
        model = compact.compact_candidate_make(weights=job.params.get("weights"))
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


def _queue_compact_if_due(ctx: JobContext) -> None:
    """After an import: a raw pretrained model with enough catalog photos now gets its compact one."""
    waiting = Job.objects.filter(kind=COMPACT_KIND, state__in=[JobState.QUEUED, JobState.RUNNING]).exists()
    if waiting or not compact.compact_due():
        return
    follow = job_submit(kind=COMPACT_KIND, requested_by=f"job {ctx.job_id} (import)")
    ctx.log(f"the catalog has enough photos for compact pretrained vectors: submitted job {follow.pk}")


# --- index, reconcile, import -----------------------------------------------------------------------


def _index_chunks(
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


def _check_index(params: dict[str, Any]) -> dict[str, Any]:
    ids = params.get("image_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise JobError("image_ids must be a list of image ids.", "image_ids")
    return {"image_ids": ids}


@job_kind("index_pending", label="Index pending images", resumable=True, check=_check_index, unit="images")
def run_index_pending(job: Job, ctx: JobContext) -> dict[str, Any]:
    due = job.params.get("image_ids") or selectors.due_for_sweep(include_fresh=True)
    ctx.progress(0, len(due))
    indexed, failed = _index_chunks(due, ctx)
    return {"indexed": indexed, "failed": failed, "summary": f"Indexed {indexed} image(s); {failed} failed."}


def _check_reconcile(params: dict[str, Any]) -> dict[str, Any]:
    return {"dry_run": bool(params.get("dry_run", False))}


@job_kind("reconcile", label="Reconcile the index", resumable=True, check=_check_reconcile)
def run_reconcile(job: Job, ctx: JobContext) -> dict[str, Any]:
    from catalog.storage import orphan_files
    from search.services.reconcile import reconcile

    dry_run = job.params.get("dry_run", False)
    prefix = "[dry run] " if dry_run else ""
    from search.services.text_index import rebuild_text_index

    reports = reconcile(dry_run=dry_run)
    files = orphan_files(remove=not dry_run)
    lines = [f"{prefix}media: {len(files)} orphan file(s) removed"]
    if not dry_run:
        # The text index has no sweeper: products added while the store was down get their points here.
        text = rebuild_text_index()
        lines.append(f"text index: {text.written} product(s) written, {text.removed} gone removed")
    if not reports:
        lines.append("No active model; nothing to reconcile.")
    for report in reports:
        lines.append(prefix + report.summary())
        lines += [f"  failed {image_id}: {error}" for image_id, error in list(report.failed.items())[:20]]
    for line in lines[:-1]:
        ctx.log(line)
    return {"orphan_files": len(files), "reports": len(reports), "summary": lines[-1]}


def _calibrate_if_needed(ctx: JobContext) -> None:
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
        ctx.log(
            f"calibrated v{model.version} on {fitted.queries} catalog views: 'same' from score {fitted.same:.3f} "
            f"(precision {fitted.precision:.3f}, unseen products answered 'no match' {fitted.no_match_unseen:.3f})"
        )


def _check_import(params: dict[str, Any]) -> dict[str, Any]:
    manifest = params.get("manifest")
    if not isinstance(manifest, str) or not Path(manifest).is_file():
        raise JobError(f"Manifest not found: {manifest}", "manifest")
    root = params.get("images_root")
    if root is not None and (not isinstance(root, str) or not Path(root).is_dir()):
        raise JobError(f"Images root not found: {root}", "images_root")
    return {"manifest": str(Path(manifest).resolve()), "images_root": root and str(Path(root).resolve())}


@job_kind(
    "import",
    label="Import a catalog",
    resumable=True,
    check=_check_import,
    local_with_broker=True,
    unit="lines",
)
def run_import(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Import a JSON Lines manifest through the catalog sync (idempotent: a re-run finds everything in
    place), indexing as it goes; with no active model the first batch's indexing makes the pretrained
    one (search/services/indexing.py)."""
    from catalog.models import SyncOrigin
    from catalog.services.sync import SyncOptions, sync_run_create, sync_run_execute
    from catalog.services.sync.runs import error_line, new_image_ids, run_summary

    manifest = Path(job.params["manifest"])
    root = job.params.get("images_root")
    with manifest.open("rb") as handle:
        total = sum(1 for line in handle if line.strip())
    ctx.log(f"importing {manifest.name}: {total} line(s)")
    run = sync_run_create(location=str(manifest), origin=SyncOrigin.COMMAND, requested_format="jsonl")
    read = 0
    # The pace of indexing, by whoever indexes (this process, or the workers): images indexed since
    # the import began, counted at most once per log line.
    since = timezone.now()
    rate = Rate("images")
    rate.update(0)

    def on_batch(records: int) -> None:
        nonlocal read
        read += records
        ctx.progress(min(read, total), total)
        if rate.due_soon():
            rate.update(selectors.images_indexed_since(since))
            if rate.due():
                ctx.log(f"read {min(read, total)}/{total} lines; {rate.count} images indexed, {rate.text()}")
        ctx.check_cancelled()

    options = SyncOptions(images_root=Path(root) if root else None)
    run = sync_run_execute(run, options=options, progress=on_batch)
    if run.error_count:
        ctx.log(f"{run.error_count} line(s) or image(s) rejected, each with its reason in the result")
    added = new_image_ids(run)
    if settings.CELERY_TASK_ALWAYS_EAGER and added:
        # Each batch was indexed as it committed; a transient failure left some pending: once more now.
        left = selectors.pending_among(added)
        if left:
            ctx.log(f"indexing {len(left)} image(s) left pending")
            try:
                _index_chunks(left, ctx, done=read, total=read + len(left))
            except TRANSIENT as exc:
                ctx.log(f"indexing later ({exc}); the sweeper retries pending images")
    counts = catalog_selectors.index_status_counts(image_ids=added)
    rate.update(selectors.images_indexed_since(since))
    if rate.count:
        ctx.log(f"{rate.count} images indexed since the import began, {rate.text()}")
    if settings.CELERY_TASK_ALWAYS_EAGER:
        _calibrate_if_needed(ctx)
    _queue_compact_if_due(ctx)
    where = "" if settings.CELERY_TASK_ALWAYS_EAGER else " (the workers index what is pending)"
    summary = (
        f"{run_summary(run)} New images: {counts['indexed']} indexed, {counts['pending']} pending, "
        f"{counts['failed']} failed{where}."
    )
    errors = [error_line(e) for e in run.errors.all()[:MAX_ERRORS_KEPT]]
    return {
        "sync_run": run.pk,
        "lines": run.records,
        "rejected": run.error_count,
        "images_added": run.images_added,
        "errors": errors,
        "more_errors": max(0, run.error_count - len(errors)),
        "index": counts,
        "ok": not run.error_count and not counts["failed"],
        "summary": summary,
    }


# --- the text index -----------------------------------------------------------------------------------


@job_kind("text_index", label="Rebuild the text index", resumable=True, unit="products")
def run_text_index(job: Job, ctx: JobContext) -> dict[str, Any]:
    from search.services.text_index import rebuild_text_index

    outcome = rebuild_text_index(progress=lambda written: ctx.log(f"{written} product(s) written"))
    return {
        "written": outcome.written,
        "removed": outcome.removed,
        "summary": f"Text index: {outcome.written} product(s) written, {outcome.removed} gone removed.",
    }
