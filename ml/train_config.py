"""The training configuration: every choice a training run makes, with the measured reasons for
its defaults. ``ml/train_args.py`` turns it into command-line options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ml.backbones import DEFAULT_BACKBONE, backbone_names, check_weights_file
from ml.losses import LOSSES

MODES = ("cached", "finetune")
# How the projection head starts (ml/head_init.py): "auto" is "principal" for a catalog with one photo
# per product (validated on augmented views: its run is a handful of steps) and "random" otherwise.
HEAD_INITS = ("auto", "random", "principal")
HOLDOUTS = ("group", "photo")


@dataclass
class TrainConfig:
    # "cached": train the top blocks on cached activations of the frozen bottom (ml/cached_train.py),
    # the CPU default; "finetune": train through the whole network every step (a GPU's job).
    mode: str = "cached"
    backbone: str = DEFAULT_BACKBONE
    # A local .weights.h5 path, "imagenet" (download) or None (random init: tests only).
    weights: str | None = None
    # Proxy-Anchor since 2026-12-08, chosen on the Grocery val split (cached mode, 348 px, one block):
    # photos R@1 0.858 vs multi-similarity's 0.865 (a tie at +-0.03), catalog images 0.845 vs 0.790,
    # mAP@R 0.785 vs 0.761. Every proxy is in every step, so each of the few steps a CPU affords sees
    # all products, where a pair loss sees the 32 in its batch (docs/benchmarks.md, "The loss, again").
    loss: str = "proxy_anchor"
    # Grocery Store on 2 CPU cores, cached mode, EfficientNet-Lite0: at 348 px (the photos' own size)
    # with the last block trained, 15 epochs reached test Recall@1 0.856 (photos) / 0.851 (catalog
    # images) in 22 min (9 of them caching); at 224 px with five blocks trained, 0.834 / 0.820 in 31 min.
    # The full fine-tune of MobileNetV2-0.35 at 224 px (the previous default): 0.803 / 0.693 in 21 min.
    # ``head_epochs`` is the fine-tuning mode's first phase (head only); the cosine decay spans ``epochs``.
    head_epochs: int = 1
    epochs: int = 15  # an upper bound when early stopping ends sooner
    batch_p: int = 32
    batch_k: int = 4
    image_size: int = 348
    embedding_dim: int = 128
    pooling: str = "gem"
    lr_head: float = 1e-3
    # Grocery Store val Recall@1 (192 px): 4e-4 reached 0.625 in 12 fine-tuning epochs; 2e-4 (160 px)
    # plateaued at 0.561 (the full fine-tune of MobileNetV2, where multi-similarity also beat contrastive,
    # 0.561 vs 0.446, and tied Proxy-Anchor in a short 128 px run).
    lr_finetune: float = 4e-4
    # MobileNetV2 has 154 layers; measured on 2 cores, training all of them costs no more per image
    # than the top 30 (the frozen bottom still runs forward), and the shop photos are far from ImageNet.
    unfreeze_layers: int = 100
    seed: int = 0
    output_dir: str = "var/train"
    # Validation Recall@1 on a few hundred photos wobbles by 0.02-0.06 between epochs while still
    # climbing (Grocery, 224 px), so stopping waits six epochs without a new best.
    patience: int = 6
    steps_per_epoch: int | None = None
    augment: bool = True
    # Validation embeds this many training photos as its gallery each epoch: the whole training set
    # would cost as much as an epoch of training on 2 cores.
    val_gallery_max: int = 1000
    # Two threads build (augment) the next batches while the model trains on the current one.
    workers: int = 2
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    # --- cached mode ------------------------------------------------------------------------------
    # Backbone blocks trained above the cached activations (EfficientNet-Lite0 has 16, MobileNetV2 17).
    # At 348 px one block beat five at 224 px (above), and caches the smallest activations.
    trainable_blocks: int = 1
    # Views cached per training photo (the photo and augmented copies); products with few photos get
    # more, so that each has at least min_views_per_product.
    cache_views: int = 4
    min_views_per_product: int = 16
    # At most this many views in all: caching runs about 20 views/s on 2 cores, so this bounds it to
    # about half an hour whatever the catalog's size (2,500 one-photo products reach it; more get fewer
    # views each). Chosen for time, not measured for quality past that size.
    max_cached_views: int = 40_000
    lr_top: float = 1e-3
    # How validation photos are chosen when the caller gives none (ml/holdout.py).
    holdout: str = "group"
    head_init: str = "auto"
    # Share of the products a second, shorter training leaves out so that the "same" / "no match"
    # thresholds are fitted on products a model never saw (ml/unseen_calibration.py); 0 fits them on
    # held-out photos with their own product taken out of the gallery. Cached mode, held-out photos.
    calibration_unseen: float = 0.2

    def build_model(self) -> Any:
        """The embedding model this run trains: the backbone with its weights, pooling and head."""
        from ml.model import build_embedding_model

        return build_embedding_model(
            backbone=self.backbone,
            weights=self.weights,
            image_size=self.image_size,
            embedding_dim=self.embedding_dim,
            pooling=self.pooling,
            head=True,
        )

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"unknown head_init {self.head_init!r}; choose one of: {', '.join(HEAD_INITS)}")
        if self.holdout not in HOLDOUTS:
            raise ValueError(f"unknown holdout {self.holdout!r}; choose one of: {', '.join(HOLDOUTS)}")
        if self.trainable_blocks < 0 or self.cache_views < 1 or self.max_cached_views < 2:
            raise ValueError("trainable_blocks must be >= 0, cache_views >= 1 and max_cached_views >= 2")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of: {', '.join(sorted(LOSSES))}")
        if self.backbone not in backbone_names():
            raise ValueError(
                f"unknown backbone {self.backbone!r}; choose one of: {', '.join(backbone_names())}"
            )
        if not 0.0 <= self.calibration_unseen < 1.0:
            raise ValueError("calibration_unseen must be at least 0 and below 1")
        if self.batch_p < 2 or self.batch_k < 2:
            raise ValueError("batch_p and batch_k must both be >= 2")
        if self.weights is not None and self.weights != "imagenet":
            check_weights_file(self.weights)
