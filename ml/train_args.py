"""The training options on the command line, defined once for ``python -m ml.train`` and
``manage.py train``: every TrainConfig field a person may set, and the data split."""

from __future__ import annotations

import argparse
from typing import Any

from ml.backbones import backbone_names
from ml.losses import LOSSES
from ml.train_config import HEAD_INITS, HOLDOUTS, MODES, TrainConfig


def parse_weights(value: str | None) -> str | None:
    """``none`` means random initialisation (tests, experiments); anything else is passed on."""
    if value is None or value.lower() == "none":
        return None
    return value


def add_training_arguments(parser: argparse.ArgumentParser, *, weights_default: str | None) -> None:
    """Add the model, schedule and split options (defaults from TrainConfig)."""
    d = TrainConfig()
    parser.add_argument(
        "--split-by",
        choices=["photo", "product"],
        default="photo",
        help="photo: hold out photos, keep every product (default); product: unseen products.",
    )
    parser.add_argument(
        "--holdout",
        choices=list(HOLDOUTS),
        default=d.holdout,
        help="with --split-by photo: hold out groups of look-alike photos (default) or random photos",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument(
        "--mode",
        choices=list(MODES),
        default=d.mode,
        help="cached: train the top blocks on cached activations (CPU default); finetune: the whole network",
    )
    parser.add_argument("--trainable-blocks", type=int, default=d.trainable_blocks, help="cached mode")
    parser.add_argument(
        "--head-init",
        choices=list(HEAD_INITS),
        default=d.head_init,
        help="cached mode: how the projection head starts (auto: from the features' principal directions "
        "for a catalog with one photo per product, random otherwise)",
    )
    parser.add_argument("--cache-views", type=int, default=d.cache_views, help="cached mode: views per photo")
    parser.add_argument(
        "--max-cached-views",
        type=int,
        default=d.max_cached_views,
        help="cached mode: views cached in all, which bounds caching time (about 20 views/s on 2 cores)",
    )
    parser.add_argument("--lr-top", type=float, default=d.lr_top, help="cached mode's learning rate")
    parser.add_argument(
        "--calibration-unseen",
        type=float,
        default=d.calibration_unseen,
        help="cached mode: share of products a second training leaves out to fit the answer thresholds "
        "on products it never saw (0: fit them on held-out photos with their product removed)",
    )
    parser.add_argument("--backbone", default=d.backbone, choices=backbone_names())
    parser.add_argument(
        "--weights",
        default=weights_default,
        help="local weights file, 'imagenet' (download), or 'none' for random init "
        f"(default: {weights_default or 'none'})",
    )
    parser.add_argument("--loss", default=d.loss, choices=sorted(LOSSES))
    parser.add_argument("--head-epochs", type=int, default=d.head_epochs)
    parser.add_argument("--epochs", type=int, default=d.epochs, help="fine-tuning epochs (upper bound)")
    parser.add_argument("--batch-p", type=int, default=d.batch_p, help="products per batch")
    parser.add_argument("--batch-k", type=int, default=d.batch_k, help="photos per product in a batch")
    parser.add_argument("--image-size", type=int, default=d.image_size)
    parser.add_argument("--embedding-dim", type=int, default=d.embedding_dim)
    parser.add_argument("--pooling", choices=["gem", "avg"], default=d.pooling)
    parser.add_argument("--lr-head", type=float, default=d.lr_head)
    parser.add_argument("--lr-finetune", type=float, default=d.lr_finetune)
    parser.add_argument("--unfreeze-layers", type=int, default=d.unfreeze_layers)
    parser.add_argument("--patience", type=int, default=d.patience)
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--no-augment", action="store_true", help="train on the photos as they are")
    parser.add_argument("--seed", type=int, default=d.seed)


# Options whose value goes into the TrainConfig field of the same name as it is.
_SAME_NAME = (
    "mode",
    "holdout",
    "trainable_blocks",
    "head_init",
    "cache_views",
    "max_cached_views",
    "lr_top",
    "calibration_unseen",
    "backbone",
    "loss",
    "head_epochs",
    "epochs",
    "batch_p",
    "batch_k",
    "image_size",
    "embedding_dim",
    "pooling",
    "lr_head",
    "lr_finetune",
    "unfreeze_layers",
    "patience",
    "steps_per_epoch",
    "seed",
)


def config_from_args(args: argparse.Namespace | dict[str, Any], *, output_dir: str) -> TrainConfig:
    """The TrainConfig the options describe (argparse's Namespace, or Django's options dict)."""
    o = vars(args) if isinstance(args, argparse.Namespace) else args
    return TrainConfig(
        **{name: o[name] for name in _SAME_NAME},
        weights=parse_weights(o["weights"]),
        augment=not o["no_augment"],
        output_dir=output_dir,
    )
