"""Train the embedding model on a shop's own photos (metric learning, any Keras backend).

Schedule: (1) the projection head alone, backbone frozen, at ``lr_head``; (2) the top
``unfreeze_layers`` of the backbone as well, at ``lr_finetune`` with cosine decay. After every epoch
the validation photos are embedded and Recall@1 against the training photos decides early stopping
and which weights are kept (across both phases).

    python -m ml.train --manifest var/catalog.jsonl --output var/train/run1
    python -m ml.train --grocery ../shared/data/grocery-store --output var/train/grocery
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml.augment import Augmenter
from ml.backbones import WeightsError
from ml.data import (
    DecodedImages,
    Item,
    TrainingDataError,
    check_trainable,
    decode_items,
    read_manifest,
    split_items,
)
from ml.evaluate import retrieval_metrics
from ml.grocery import iconic_items
from ml.grocery import split_items as grocery_split
from ml.losses import get_loss, uses_proxies
from ml.model import build_embedding_model, freeze_backbone, unfreeze_top_layers
from ml.proxies import PROXY_LAYER, build_training_model, class_centroids
from ml.sampler import PKSampler
from ml.train_args import add_training_arguments, config_from_args
from ml.train_config import TrainConfig

MODEL_FILENAME = "model.keras"


@dataclass
class TrainResult:
    model_path: str
    history: list[dict[str, float]]
    best_val_recall_at_1: float
    best_epoch: int
    wall_time_s: float
    num_train_images: int
    num_val_images: int
    num_products: int
    skipped_images: int
    image_size: int
    machine: str
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def embed_images(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Embed uint8 images in batches (float32 [N, D])."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        out.append(np.asarray(model.predict_on_batch(batch), dtype=np.float32))
    if not out:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    return np.concatenate(out)


class RecallEarlyStopping(keras.callbacks.Callback):
    """Validation Recall@1 after each epoch; keeps the best weights across fits and stops on a plateau.

    One instance spans both training phases, so fine-tuning that never beats the head-only model
    leaves the head-only weights in place.
    """

    def __init__(
        self,
        embedder: keras.Model,
        val: DecodedImages,
        gallery: DecodedImages | None,
        *,
        patience: int,
        checkpoint_path: Path | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        # The model being fitted may wrap the embedder (proxy losses); only the embedder is scored and kept.
        self.embedder = embedder
        self.val = val
        self.gallery = gallery
        self.patience = patience
        self.checkpoint_path = checkpoint_path
        self.verbose = verbose
        self.best = -1.0
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.global_epoch = 0
        self.wait = 0

    def start_phase(self) -> None:
        self.wait = 0

    def score(self) -> float:
        query = embed_images(self.embedder, self.val.images)
        if self.gallery is None:  # unseen products: leave-one-out within validation
            metrics = retrieval_metrics(
                query, self.val.labels, query, self.val.labels, ks=(1,), exclude_self=True
            )
        else:
            gallery = embed_images(self.embedder, self.gallery.images)
            metrics = retrieval_metrics(query, self.val.labels, gallery, self.gallery.labels, ks=(1,))
        recall = float(metrics["recall@1"])
        return 0.0 if np.isnan(recall) else recall

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_epoch += 1
        recall = self.score()
        if logs is not None:
            logs["val_recall_at_1"] = recall
        improved = recall > self.best
        if improved:
            self.best, self.best_epoch, self.wait = recall, self.global_epoch, 0
            self.best_weights = [np.array(w) for w in self.embedder.get_weights()]
            if self.checkpoint_path is not None:
                self.embedder.save(self.checkpoint_path)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True
        if self.verbose:
            mark = " (best)" if improved else f" (best {self.best:.4f} at epoch {self.best_epoch})"
            print(f"epoch {self.global_epoch}: val Recall@1 {recall:.4f}{mark}", flush=True)

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.embedder.set_weights(self.best_weights)


def _gallery_subset(train: DecodedImages, max_images: int, seed: int) -> DecodedImages:
    if len(train) <= max_images:
        return train
    # Stratified: every product keeps at least one photo in the gallery, or its queries cannot hit.
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    first = {}
    for i in order:
        first.setdefault(int(train.labels[i]), int(i))
    chosen = list(first.values())
    taken = set(chosen)
    rest = [int(i) for i in order if int(i) not in taken]
    chosen += rest[: max(0, max_images - len(chosen))]
    idx = np.sort(np.asarray(chosen))
    return DecodedImages(train.images[idx], train.labels[idx], train.label_names)


def machine_description() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()}, keras {keras.__version__} ({keras.backend.backend()})"


def train(
    config: TrainConfig,
    train_items: Sequence[Item],
    val_items: Sequence[Item],
    progress: bool = True,
) -> TrainResult:
    """Train and save ``<output_dir>/model.keras`` (the best weights by validation Recall@1)."""
    started = time.perf_counter()
    config.validate()
    check_trainable(train_items, "training data")
    if not val_items:
        raise TrainingDataError("validation data is empty; hold out some photos (see ml.data.split_items)")
    keras.utils.set_random_seed(config.seed)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)

    train_set = decode_items(train_items, config.image_size, progress=progress, desc="decoding train")
    val_set = decode_items(
        val_items,
        config.image_size,
        label_names=train_set.label_names,
        progress=progress,
        desc="decoding val",
    )
    if train_set.num_products < 2:
        raise TrainingDataError(
            f"only {train_set.num_products} product has a readable image "
            f"({train_set.skipped} skipped); metric learning needs at least two"
        )
    if len(val_set) == 0:
        raise TrainingDataError(f"no readable validation image ({val_set.skipped} skipped)")
    skipped = train_set.skipped + val_set.skipped
    if progress and skipped:
        print(
            f"skipped {skipped} unreadable images, e.g. {(train_set.skipped_sources + val_set.skipped_sources)[0]}"
        )

    seen = set(np.unique(train_set.labels).tolist())
    val_products_seen = all(int(label) in seen for label in np.unique(val_set.labels))
    gallery = _gallery_subset(train_set, config.val_gallery_max, config.seed) if val_products_seen else None

    model = build_embedding_model(
        backbone=config.backbone,
        weights=config.weights,
        image_size=config.image_size,
        embedding_dim=config.embedding_dim,
        pooling=config.pooling,
        head=True,
    )
    augmenter = Augmenter(config.image_size) if config.augment else None
    sampler = PKSampler(
        train_set.images,
        train_set.labels,
        p=config.batch_p,
        k=config.batch_k,
        augmenter=augmenter,
        steps_per_epoch=config.steps_per_epoch,
        seed=config.seed,
        workers=config.workers,
        use_multiprocessing=False,
    )
    fit_model = model
    if uses_proxies(config.loss):
        fit_model = build_training_model(model, num_classes=len(train_set.label_names))
        # Proxies start at their products' mean embedding under the initial model rather than at
        # random: the first steps then refine a sensible layout instead of discovering one.
        sample = (
            gallery
            if gallery is not None
            else _gallery_subset(train_set, config.val_gallery_max, config.seed)
        )
        centroids = class_centroids(
            embed_images(model, sample.images), sample.labels, len(train_set.label_names)
        )
        fit_model.get_layer(PROXY_LAYER).set_proxies(centroids)
    tracker = RecallEarlyStopping(
        model,
        val_set,
        gallery,
        patience=config.patience,
        checkpoint_path=output / "checkpoint.keras",
        verbose=progress,
    )
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    history: list[dict[str, float]] = []

    def run_phase(
        phase: str, epochs: int, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
    ) -> None:
        if epochs <= 0:
            return
        tracker.start_phase()
        fit_model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=get_loss(config.loss, **config.loss_kwargs),
        )
        if progress:
            print(
                f"phase {phase}: {epochs} epochs x {len(sampler)} steps of {sampler.batch_size} images",
                flush=True,
            )
        fit = fit_model.fit(sampler, epochs=epochs, callbacks=[tracker], verbose=verbose)
        for i in range(len(fit.history.get("loss", []))):
            history.append({"phase": phase, **{k: float(v[i]) for k, v in fit.history.items()}})

    freeze_backbone(model)
    run_phase("head", config.head_epochs, config.lr_head)
    if config.epochs > 0 and config.unfreeze_layers > 0:
        unfreeze_top_layers(model, config.unfreeze_layers)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.lr_finetune, decay_steps=max(1, config.epochs * len(sampler)), alpha=0.05
        )
        run_phase("finetune", config.epochs, schedule)

    tracker.restore_best()
    freeze_backbone(model)  # the saved model is for inference; training flags do not matter there
    model_path = output / MODEL_FILENAME
    # An uncompiled clone carries no optimizer state: a smaller file, and loading it does not warn
    # about optimizer variables that no longer match (checkpoint.keras keeps them for resuming).
    inference_model = keras.models.clone_model(model)
    inference_model.set_weights(model.get_weights())
    inference_model.save(model_path)
    wall = time.perf_counter() - started
    result = TrainResult(
        model_path=str(model_path),
        history=history,
        best_val_recall_at_1=float(tracker.best),
        best_epoch=int(tracker.best_epoch),
        wall_time_s=round(wall, 1),
        num_train_images=len(train_set),
        num_val_images=len(val_set),
        num_products=train_set.num_products,
        skipped_images=skipped,
        image_size=config.image_size,
        machine=machine_description(),
        config=dataclasses.asdict(config),
    )
    (output / "train_result.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    if progress:
        print(
            f"trained {config.backbone} ({config.loss}, {config.image_size}px) on {len(train_set)} images of "
            f"{train_set.num_products} products ({skipped} skipped) in {wall:.0f}s; best val Recall@1 "
            f"{tracker.best:.4f} at epoch {tracker.best_epoch}; model: {model_path}",
            flush=True,
        )
    return result


# --- command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ml.train", description="Train the Lookalike embedding model.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--manifest", help="JSONL: one {'sku': ..., 'images': [paths relative to the file]} a line"
    )
    src.add_argument(
        "--grocery", help="Grocery Store Dataset folder: train split + catalog images, val split"
    )
    p.add_argument("--output", required=True, help="output folder (model.keras, train_result.json)")
    p.add_argument("--val-manifest", help="validation manifest (default: hold out photos of --manifest)")
    add_training_arguments(p, weights_default=None)
    p.add_argument("--quiet", action="store_true")
    return p


def _items_from_args(args: argparse.Namespace) -> tuple[list[Item], list[Item]]:
    if args.grocery:
        train_items = grocery_split(args.grocery, "train") + iconic_items(args.grocery)
        return train_items, grocery_split(args.grocery, "val")
    items = read_manifest(args.manifest)
    if args.val_manifest:
        return items, read_manifest(args.val_manifest)
    check_trainable(items, f"manifest {args.manifest}")
    return split_items(items, val_fraction=args.val_fraction, split_by=args.split_by, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        train_items, val_items = _items_from_args(args)
        config = config_from_args(args, output_dir=args.output)
        if config.weights is None and not args.quiet:
            print("note: no --weights given, so the backbone starts from random init; pass a weights file")
        train(config, train_items, val_items, progress=not args.quiet)
    except (TrainingDataError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
