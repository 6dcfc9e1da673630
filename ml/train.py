"""Train the embedding model on a shop's own photos (metric learning, any Keras backend).

Two modes (TrainConfig.mode):
- ``cached`` (default; ml/cached_train.py): the top blocks of the backbone, its head and the projection
  train on cached activations of the frozen bottom: the CPU-sized way.
- ``finetune`` (below): the projection head alone first, then the top ``unfreeze_layers`` of the
  backbone with it, every step through the whole network (a GPU's job).
Either way, after every epoch validation Recall@1 decides early stopping and which weights are kept,
and the result scores the trained model and the untrained backbone on the same held-out photos.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml.augment import Augmenter
from ml.backbones import WeightsError
from ml.cached_train import HeldOut, run_cached
from ml.data import (
    DecodedImages,
    Item,
    TrainingDataError,
    check_trainable,
    decode_items,
    read_manifest,
    split_items,
)
from ml.evaluate import RECALL_AT_1, retrieval_metrics, safe_retrieval_metrics
from ml.grocery import iconic_items
from ml.grocery import split_items as grocery_split
from ml.losses import get_loss, uses_proxies
from ml.model import build_embedding_model, freeze_backbone, unfreeze_top_layers
from ml.proxies import PROXY_LAYER, build_training_model, class_centroids
from ml.recall_tracking import EpochListener, RecallEarlyStopping
from ml.sampler import PKSampler
from ml.train_args import add_training_arguments, config_from_args
from ml.train_config import TrainConfig

MODEL_FILENAME = "model.keras"


@dataclass
class TrainResult:
    model_path: str
    history: list[dict[str, float | str]]
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
    validation: str = ""
    # Recall@K / mAP@R on the validation photos: the trained model, and the untrained backbone.
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    # The validation embeddings and which of the given items were held out (not written to JSON).
    held_out: HeldOut | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("held_out")
        safe: dict[str, Any] = _json_safe(data)
        return safe


def _json_safe(value: Any) -> Any:
    # JSON (and PostgreSQL's jsonb) has no NaN: a metric that could not be measured is null.
    if isinstance(value, float):
        return None if value != value else value
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def embed_images(model: keras.Model, images: Any, batch_size: int = 64) -> np.ndarray:
    """Embed uint8 images in batches (float32 [N, D])."""
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].astype(np.float32)
        out.append(np.asarray(model.predict_on_batch(batch), dtype=np.float32))
    if not out:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    return np.concatenate(out)


def _gallery_subset(train: DecodedImages, max_images: int, seed: int) -> DecodedImages:
    if len(train) <= max_images:
        return train
    # Stratified: every product keeps at least one photo in the gallery, or its queries cannot hit.
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    first: dict[int, int] = {}
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
    val_items: Sequence[Item] | None = None,
    progress: bool = True,
    *,
    val_fraction: float = 0.1,
    on_epoch: EpochListener | None = None,
    hard_negatives: dict[str, list[str]] | None = None,
) -> TrainResult:
    """Train and save ``<output_dir>/model.keras`` (the best weights by validation Recall@1).

    With ``val_items=None`` the validation photos are chosen from ``train_items`` (ml/holdout.py:
    groups of look-alikes, or augmented views of a one-photo-per-product catalog); ``held_out`` on the
    result says which items they were. ``hard_negatives`` (cached mode) names, per product, products it
    is confused with (shoppers' skips): batches put them side by side.
    """
    started = time.perf_counter()
    config.validate()
    check_trainable(train_items, "training data")
    keras.utils.set_random_seed(config.seed)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        if progress:
            print(line, flush=True)

    t0 = time.perf_counter()
    # Cached mode reads the photos a batch at a time: they wait on disk (removed with the run's scratch).
    spill = output / "scratch" / "train-photos.u8" if config.mode == "cached" else None
    train_set = decode_items(
        train_items, config.image_size, progress=progress, desc="decoding train", spill=spill
    )
    val_set = None
    if val_items is not None:
        if not val_items:
            raise TrainingDataError("validation data is empty; hold out some photos or pass none")
        val_set = decode_items(
            val_items,
            config.image_size,
            label_names=train_set.label_names,
            progress=progress,
            desc="decoding val",
        )
        if len(val_set) == 0:
            raise TrainingDataError(f"no readable validation image ({val_set.skipped} skipped)")
    decode_s = round(time.perf_counter() - t0, 1)
    if train_set.num_products < 2:
        raise TrainingDataError(
            f"only {train_set.num_products} product has a readable image "
            f"({train_set.skipped} skipped); metric learning needs at least two"
        )
    skipped = train_set.skipped + (val_set.skipped if val_set is not None else 0)
    if skipped:
        sources = train_set.skipped_sources + (val_set.skipped_sources if val_set is not None else [])
        log(f"skipped {skipped} unreadable images, e.g. {sources[0]}")

    if config.mode == "cached":
        run = run_cached(
            config, train_set, val_set, val_fraction=val_fraction, output=output, progress=progress,
            on_epoch=on_epoch, log=log, hard_negatives=hard_negatives,
        )  # fmt: skip
        model, tracker, history = run.model, run.tracker, run.history
        validation, metrics, baseline, held_out = run.validation, run.metrics, run.baseline, run.held_out
        num_train, num_val, timings = run.num_train, run.num_val, run.timings
    else:
        if val_set is None:
            items_train, items_val = split_items(train_items, val_fraction=val_fraction, seed=config.seed)
            return train(config, items_train, items_val, progress, on_epoch=on_epoch)
        model, tracker, history, metrics, baseline = _finetune(
            config, train_set, val_set, output, progress, on_epoch
        )
        validation, held_out = "the validation photos given", None
        num_train, num_val, timings = len(train_set), len(val_set), {}
    timings = {"decode_s": decode_s, **timings}

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
        num_train_images=num_train,
        num_val_images=num_val,
        num_products=train_set.num_products,
        skipped_images=skipped,
        image_size=config.image_size,
        machine=machine_description(),
        config=dataclasses.asdict(config),
        validation=validation,
        metrics=metrics,
        baseline=baseline,
        timings=timings,
        held_out=held_out,
    )
    (output / "train_result.json").write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    log(
        f"trained {config.backbone} ({config.mode}, {config.loss}, {config.image_size}px) on {num_train} images of "
        f"{train_set.num_products} products ({skipped} skipped) in {wall:.0f}s; validation ({validation}): "
        f"Recall@1 {tracker.best:.4f} at epoch {tracker.best_epoch} (untrained {baseline.get(RECALL_AT_1, float('nan')):.4f}); "
        f"model: {model_path}"
    )
    return result


def _finetune(
    config: TrainConfig,
    train_set: DecodedImages,
    val_set: DecodedImages,
    output: Path,
    progress: bool,
    on_epoch: EpochListener | None,
) -> tuple[keras.Model, RecallEarlyStopping, list[dict[str, float | str]], dict[str, Any], dict[str, Any]]:
    """Train through the whole network: the head alone, then the top ``unfreeze_layers`` with it."""
    seen = set(np.unique(train_set.labels).tolist())
    val_products_seen = all(int(label) in seen for label in np.unique(val_set.labels))
    gallery = _gallery_subset(train_set, config.val_gallery_max, config.seed) if val_products_seen else None

    model = config.build_model()
    augmenter = Augmenter(config.image_size) if config.augment else None
    images = train_set.images
    assert isinstance(images, np.ndarray), "fine-tuning decodes its photos into memory"
    sampler = PKSampler(
        images,
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

    def score() -> float:
        query = embed_images(model, val_set.images)
        if gallery is None:  # unseen products: leave-one-out within validation
            m = retrieval_metrics(query, val_set.labels, query, val_set.labels, ks=(1,), exclude_self=True)
        else:
            m = retrieval_metrics(
                query, val_set.labels, embed_images(model, gallery.images), gallery.labels, ks=(1,)
            )
        return float(m[RECALL_AT_1])

    tracker = RecallEarlyStopping(
        model, score, patience=config.patience, checkpoint_path=output / "checkpoint.keras", verbose=progress,
        on_epoch=on_epoch,
    )  # fmt: skip
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    history: list[dict[str, float | str]] = []

    def run_phase(
        phase: str, epochs: int, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule
    ) -> None:
        if epochs <= 0:
            return
        tracker.start_phase()
        fit_model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss=get_loss(config.loss, **config.loss_kwargs)
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
    metrics, baseline = _score_both(config, model, val_set, gallery if gallery is not None else None)
    return model, tracker, history, metrics, baseline


def _score_both(
    config: TrainConfig, model: keras.Model, val_set: DecodedImages, gallery: DecodedImages | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Recall@K / mAP@R of the trained model and the untrained backbone on the validation photos."""
    untrained = build_embedding_model(
        backbone=config.backbone,
        weights=config.weights,
        image_size=config.image_size,
        head=False,
        pooling="avg",
    )
    scores = []
    for m in (model, untrained):
        q = embed_images(m, val_set.images)
        if gallery is None:
            scores.append(safe_retrieval_metrics(q, val_set.labels, q, val_set.labels, exclude_self=True))
        else:
            scores.append(
                safe_retrieval_metrics(q, val_set.labels, embed_images(m, gallery.images), gallery.labels)
            )
    return scores[0], scores[1]


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


def _items_from_args(args: argparse.Namespace) -> tuple[Sequence[Item], Sequence[Item] | None]:
    if args.grocery:
        train_items = grocery_split(args.grocery, "train") + iconic_items(args.grocery)
        return train_items, grocery_split(args.grocery, "val")
    items = read_manifest(args.manifest)
    if args.val_manifest:
        return items, read_manifest(args.val_manifest)
    check_trainable(items, f"manifest {args.manifest}")
    if args.split_by == "product":
        return split_items(items, val_fraction=args.val_fraction, split_by="product", seed=args.seed)
    return items, None  # the training run holds out look-alike groups itself (ml/holdout.py)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        train_items, val_items = _items_from_args(args)
        config = config_from_args(args, output_dir=args.output)
        if config.weights is None and not args.quiet:
            print("note: no --weights given, so the backbone starts from random init; pass a weights file")
        train(config, train_items, val_items, progress=not args.quiet, val_fraction=args.val_fraction)
    except (TrainingDataError, WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
