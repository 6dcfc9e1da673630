from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Train an embedding model on the catalog's photos (or --manifest), evaluate it against the "
        "untrained backbone, export it for TF Serving and record it as a candidate model version."
    )

    def add_arguments(self, parser) -> None:
        from ml.losses import LOSSES
        from ml.train import TrainConfig

        d = TrainConfig()
        parser.add_argument("--manifest", type=Path, help="Train on a JSONL manifest instead of the catalog.")
        parser.add_argument(
            "--split-by",
            choices=["photo", "product"],
            default="photo",
            help="photo: hold out photos, keep every product (default); product: unseen products.",
        )
        parser.add_argument("--val-fraction", type=float, default=0.1)
        parser.add_argument("--backbone", default=d.backbone)
        parser.add_argument(
            "--weights",
            default=None,
            help="Local weights file, 'imagenet', or 'none' for random init (default: BACKBONE_WEIGHTS).",
        )
        parser.add_argument("--loss", default=d.loss, choices=sorted(LOSSES))
        parser.add_argument("--head-epochs", type=int, default=d.head_epochs)
        parser.add_argument("--epochs", type=int, default=d.epochs)
        parser.add_argument("--batch-p", type=int, default=d.batch_p)
        parser.add_argument("--batch-k", type=int, default=d.batch_k)
        parser.add_argument("--image-size", type=int, default=d.image_size)
        parser.add_argument("--embedding-dim", type=int, default=d.embedding_dim)
        parser.add_argument("--lr-head", type=float, default=d.lr_head)
        parser.add_argument("--lr-finetune", type=float, default=d.lr_finetune)
        parser.add_argument("--unfreeze-layers", type=int, default=d.unfreeze_layers)
        parser.add_argument("--patience", type=int, default=d.patience)
        parser.add_argument("--steps-per-epoch", type=int, default=None)
        parser.add_argument("--seed", type=int, default=d.seed)
        parser.add_argument(
            "--output", type=Path, default=None, help="Run folder (default var/train/<timestamp>)."
        )

    def handle(self, *args, **o) -> None:
        import time

        from ml.backbones import WeightsError
        from ml.data import TrainingDataError
        from ml.train import TrainConfig
        from search.training import train_candidate

        output = o["output"] or Path(settings.VAR_DIR) / "train" / time.strftime("%Y%m%d-%H%M%S")
        config = TrainConfig(
            backbone=o["backbone"],
            weights=_weights(o["weights"]),
            loss=o["loss"],
            head_epochs=o["head_epochs"],
            epochs=o["epochs"],
            batch_p=o["batch_p"],
            batch_k=o["batch_k"],
            image_size=o["image_size"],
            embedding_dim=o["embedding_dim"],
            lr_head=o["lr_head"],
            lr_finetune=o["lr_finetune"],
            unfreeze_layers=o["unfreeze_layers"],
            patience=o["patience"],
            steps_per_epoch=o["steps_per_epoch"],
            seed=o["seed"],
            output_dir=str(output),
        )
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


def _weights(value: str | None) -> str | None:
    if value is None:
        return settings.BACKBONE_WEIGHTS
    return None if value.lower() == "none" else value
