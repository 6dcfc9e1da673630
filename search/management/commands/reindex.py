from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm


class Command(BaseCommand):
    help = (
        "Move the index to a model version (default: the latest candidate) with no downtime: fill its "
        "collection, compare it with the active model on held-out photos, promote if not worse."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--model", type=int, default=None, help="Model version number (default: latest candidate)."
        )
        parser.add_argument(
            "--force", action="store_true", help="Promote even if the evaluation gate says worse."
        )
        parser.add_argument(
            "--no-wait", action="store_true", help="With a broker: enqueue and return at once."
        )

    def handle(self, *args, model: int | None, force: bool, no_wait: bool, **options) -> None:
        from search.models import ModelVersion, ReindexJob
        from search.services import reindex
        from search.vector_store import VectorStoreError

        target = None
        if model is not None:
            target = ModelVersion.objects.filter(version=model).first()
            if target is None:
                raise CommandError(f"No model version {model}; see the admin's Model versions list.")
        in_process = settings.CELERY_TASK_ALWAYS_EAGER
        try:
            job = reindex.reindex_start(model=target, force=force, announce=not in_process)
        except (reindex.ReindexError, VectorStoreError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Reindex job {job.pk}: {job.total} images into {job.model_version.collection}")
        bar = tqdm(total=job.total, unit="img", desc=f"reindex v{job.model_version.version}", disable=None)
        if in_process:
            job = reindex.reindex_fill(job, on_batch=lambda j: _sync(bar, j))
        elif no_wait:
            bar.close()
            self.stdout.write("Enqueued; follow it in the admin (Reindex jobs).")
            return
        else:
            while job.status in ("queued", "running", "evaluating"):
                time.sleep(1)
                job = ReindexJob.objects.get(pk=job.pk)
                _sync(bar, job)
        bar.close()
        job.refresh_from_db()
        gate = job.gate or {}
        detail = ""
        if "candidate" in gate:
            detail = (
                f" R@1 candidate {gate['candidate'].get('recall@1', float('nan')):.3f} vs active "
                f"{gate['active'].get('recall@1', float('nan')):.3f} on {gate.get('queries', 0)} held-out photos."
            )
        style = self.style.SUCCESS if job.status == "promoted" else self.style.WARNING
        self.stdout.write(
            style(f"Job {job.pk} {job.status}: {job.done} indexed, {job.failed} failed.{detail}")
        )
        if job.status == "rejected":
            self.stdout.write("Use --force to promote anyway.")


def _sync(bar, job) -> None:
    job.refresh_from_db()
    bar.update(job.done + job.failed - bar.n)
