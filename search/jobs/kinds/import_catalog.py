"""The "import" kind: a JSON Lines manifest through the catalog sync, indexed as it goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.utils import timezone

from catalog import selectors as catalog_selectors
from search import selectors
from search.jobs.placement import placement
from search.jobs.progress import Rate
from search.jobs.registry import JobContext, JobError, job_kind
from search.jobs.steps import TRANSIENT, calibrate_if_needed, index_chunks, queue_compact_if_due
from search.models import Job

MAX_ERRORS_KEPT = 200  # rejected manifest lines kept on an import job's result


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
    # Embedded, each batch was indexed here as it committed; with a broker the workers index them.
    indexed_here = placement().embedded
    if indexed_here and added:
        # A transient failure left some pending: once more now.
        left = selectors.pending_among(added)
        if left:
            ctx.log(f"indexing {len(left)} image(s) left pending")
            try:
                index_chunks(left, ctx, done=read, total=read + len(left))
            except TRANSIENT as exc:
                ctx.log(f"indexing later ({exc}); the sweeper retries pending images")
    counts = catalog_selectors.index_status_counts(image_ids=added)
    rate.update(selectors.images_indexed_since(since))
    if rate.count:
        ctx.log(f"{rate.count} images indexed since the import began, {rate.text()}")
    if indexed_here:
        calibrate_if_needed(ctx)
    queue_compact_if_due(ctx)
    where = "" if indexed_here else " (the workers index what is pending)"
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
