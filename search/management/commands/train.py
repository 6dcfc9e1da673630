from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Train an embedding model on the catalog's photos (or --manifest), evaluate it against the "
        "untrained backbone, export it for TF Serving and record it as a candidate model version."
    )

    def add_arguments(self, parser) -> None:
        from ml.train_args import add_training_arguments

        parser.add_argument("--manifest", type=Path, help="Train on a JSONL manifest instead of the catalog.")
        parser.add_argument(
            "--output", type=Path, default=None, help="Run folder (default var/train/<timestamp>)."
        )
        add_training_arguments(parser, weights_default=settings.BACKBONE_WEIGHTS)

    def handle(self, *args, **o) -> None:
        from ml.backbones import WeightsError
        from ml.data import TrainingDataError
        from ml.train_args import config_from_args
        from search.services.training import train_candidate

        output = o["output"] or Path(settings.VAR_DIR) / "train" / time.strftime("%Y%m%d-%H%M%S")
        config = config_from_args(o, output_dir=str(output))
        try:
            outcome = train_candidate(
                config=config, manifest=o["manifest"], split_by=o["split_by"], val_fraction=o["val_fraction"]
            )
        except (TrainingDataError, WeightsError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        m, b = outcome.metrics, outcome.baseline
        self.stdout.write(
            self.style.SUCCESS(
                f"Candidate model v{outcome.model.version} in {outcome.wall_time_s:.0f} s: "
                f"R@1 {m['recall@1']:.3f} (untrained {b['recall@1']:.3f}), R@5 {m['recall@5']:.3f}, "
                f"mAP@R {m['map@r']:.3f}. Report: {outcome.model.report_path}. "
                f"Promote with: manage.py reindex --model {outcome.model.version}"
            )
        )
