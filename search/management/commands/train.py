from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Train an embedding model on the catalog's photos (or --manifest), evaluate it against the "
        "untrained backbone, export it for TF Serving and record it as a candidate model version. "
        "Trains here, in the foreground; --no-wait queues it for the background runner instead (the web "
        "process, or a Celery worker), which trains in its own low-priority process."
    )

    def add_arguments(self, parser) -> None:
        from search.jobs.training import add_catalog_training_arguments

        parser.add_argument(
            "--output", type=Path, default=None, help="Run folder (default var/train/<timestamp>)."
        )
        add_catalog_training_arguments(parser)
        parser.add_argument(
            "--then-promote",
            action="store_true",
            help="Then reindex to the new candidate and promote it if the evaluation gate passes.",
        )
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="Queue the training for the background runner, print the job id and return.",
        )
        parser.add_argument(
            "--unless-trained",
            action="store_true",
            help="Do nothing when a model trained on the catalog serves, or a training is queued or running.",
        )
        # The training process a job's runner starts (search/jobs/kinds/train.py).
        parser.add_argument("--job", type=int, default=None, help=argparse.SUPPRESS)
        parser.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)

    def handle(self, *args, **o) -> None:
        if o["job"] is not None:
            return self._train_for_job(o["job"], o["nice"])
        if o["unless_trained"] and self._trained_or_training():
            return None
        from search.jobs.records import job_submit
        from search.jobs.registry import JobError
        from search.jobs.runner import job_run
        from search.jobs.training import train_defaults
        from search.management.job_console import report, run_job_command

        defaults = train_defaults()
        given = {
            name: (str(o[name]) if isinstance(o[name], Path) else o[name])
            for name in defaults
            if o.get(name) != defaults[name]
        }
        params = {"options": given, "then_promote": o["then_promote"]}
        if o["no_wait"]:
            try:
                job = job_submit(kind="train", params=params, requested_by="manage.py train --no-wait")
            except JobError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                f"Job {job.pk} (train) queued for the background runner; follow it in the admin at "
                f"/admin/search/job/{job.pk}/change/"
            )
            return None
        try:
            job = job_submit(kind="train", params=params, requested_by="manage.py train", claim=True)
        except JobError as exc:
            raise CommandError(str(exc)) from exc
        output = o["output"] or Path(settings.VAR_DIR) / "train" / time.strftime("%Y%m%d-%H%M%S")
        job = job_run(job, run=lambda job, ctx: self._train_here(o, output, ctx))
        report(self, job)
        version = job.result["model_version"]
        if o["then_promote"]:
            run_job_command(
                self, kind="reindex", params={"model": version}, requested_by="manage.py train --then-promote"
            )
        else:
            self.stdout.write(f"Promote with: manage.py reindex --model {version}")
        return None

    def _trained_or_training(self) -> bool:
        from search import selectors
        from search.models import ModelKind

        active = selectors.active_model()
        if active is not None and active.kind == ModelKind.TRAINED:
            self.stdout.write(
                f"A model trained on the catalog serves already (v{active.version}); not training."
            )
            return True
        open_training = selectors.open_jobs().filter(kind="train").first()
        if open_training is not None:
            self.stdout.write(f"Job {open_training.pk} is training already; not training again.")
            return True
        return False

    def _train_here(self, o: dict, output: Path, ctx) -> dict:
        from ml.train_args import config_from_args
        from search.jobs.training import outcome_result, train_reporting

        outcome = train_reporting(
            config=config_from_args(o, output_dir=str(output)),
            report=ctx.progress,
            on_line=ctx.log,
            manifest=Path(o["manifest"]) if o["manifest"] else None,
            split_by=o["split_by"],
            val_fraction=o["val_fraction"],
            with_feedback=o["with_feedback"],
        )
        return outcome_result(outcome)

    def _train_for_job(self, job_id: int, nice: int) -> None:
        """The training process of a job: lower its own priority, train with the job's options, report
        epochs as the job's progress and record the candidate on the job; its output is the job's log."""
        from ml.backbones import WeightsError
        from ml.data import TrainingDataError
        from ml.train_args import config_from_args
        from search.jobs.records import job_progress
        from search.jobs.registry import JobError
        from search.jobs.training import (
            parse_train_options,
            record_outcome,
            train_defaults,
            train_reporting,
            watch_parent,
        )
        from search.models import Job

        if nice and hasattr(os, "nice"):
            os.nice(nice)
        watch_parent()
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise CommandError(f"No job {job_id}.")
        niceness = os.nice(0) if hasattr(os, "nice") else 0
        self.stdout.write(f"training process {os.getpid()} for job {job_id}, at nice {niceness}")
        try:
            options, _ = parse_train_options(job.params.get("options") or {})
            o = {**train_defaults(), **options}
            output = Path(settings.VAR_DIR) / "train" / f"job-{job_id}"
            outcome = train_reporting(
                config=config_from_args(o, output_dir=str(output)),
                report=lambda done, total: job_progress(job_id, done=done, total=total),
                manifest=Path(o["manifest"]) if o["manifest"] else None,
                split_by=o["split_by"],
                val_fraction=o["val_fraction"],
                with_feedback=o["with_feedback"],
            )
        except (JobError, TrainingDataError, WeightsError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(record_outcome(job_id, outcome)["summary"])
