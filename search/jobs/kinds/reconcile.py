"""The "reconcile" kind: compare the catalog with the store and repair both ways; remove orphan media
files; rebuild the text index."""

from __future__ import annotations

from typing import Any

from search.jobs.registry import JobContext, job_kind
from search.models import Job


def _check_reconcile(params: dict[str, Any]) -> dict[str, Any]:
    return {"dry_run": bool(params.get("dry_run", False))}


@job_kind("reconcile", label="Reconcile the index", resumable=True, check=_check_reconcile)
def run_reconcile(job: Job, ctx: JobContext) -> dict[str, Any]:
    from catalog.storage import orphan_files
    from search.services.reconcile import reconcile
    from search.services.text_index import rebuild_text_index

    dry_run = job.params.get("dry_run", False)
    prefix = "[dry run] " if dry_run else ""
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
