"""Training the top of the network on cached activations of its frozen bottom (the default on CPUs).

1. The backbone is split at a block boundary (ml/backbone_split.py): the bottom keeps its ImageNet
   weights, the last ``trainable_blocks`` blocks, the backbone's head, pooling and projection train.
2. The bottom runs once per photo (validation and gallery) and once per augmented view of each
   training photo (ml/feature_cache.py); every epoch then runs only the top.
3. Validation photos are chosen here when the caller gives none (ml/holdout.py): groups of
   look-alikes, or augmented views for a catalog with one photo per product.
4. The trained model and the untrained backbone are scored on the same held-out photos, from the same
   cached activations (the untrained backbone's bottom is the same network).
5. With held-out photos, a second top trains from the same cache with a share of the products left
   out, for the answer thresholds (ml/unseen_calibration.py).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ml import calibration
from ml.augment import Augmenter
from ml.backbone_split import make_top_trainable, split_embedding_model
from ml.data import DecodedImages, TrainingDataError
from ml.disk_array import Rows
from ml.evaluate import RECALL_AT_1, safe_retrieval_metrics
from ml.feature_cache import CachedPKSampler, activations, cache_views, views_per_image
from ml.head_init import init_head_from_features
from ml.holdout import group_holdout, holdable, pooled
from ml.losses import get_loss, uses_proxies
from ml.model import build_embedding_model
from ml.proxies import PROXY_LAYER, build_training_model, class_centroids
from ml.recall_tracking import EpochListener, RecallEarlyStopping
from ml.train_config import TrainConfig
from ml.unseen_calibration import choose_left_out, scored_with_left_out

# Validation queries when a catalog has one photo per product: fresh views of at most this many photos.
VIEW_QUERIES = 400


@dataclass
class HeldOut:
    """What validation scored, for the caller's own use (calibration, the gate's query set)."""

    query_embeddings: np.ndarray
    query_labels: np.ndarray
    gallery_embeddings: np.ndarray
    gallery_labels: np.ndarray
    query_sources: list[int] = field(default_factory=list)  # indices into the images given
    # The thresholds' fitting data from a model that never saw some products (ml/unseen_calibration.py);
    # None where the run had none, and the own-product stand-in is used.
    unseen: dict[str, np.ndarray] | None = None
    unseen_products: int = 0
    on_views: bool = False  # the queries are augmented views of the catalog photos (one photo per product)

    def scored(self) -> dict[str, np.ndarray]:
        """What ``ml.calibration.fit`` fits the answer thresholds on."""
        if self.unseen is not None:
            return self.unseen
        return calibration.scored_queries(
            self.query_embeddings, self.query_labels, self.gallery_embeddings, self.gallery_labels
        )

    @property
    def calibration_source(self) -> str:
        if self.on_views:
            return calibration.SOURCE_VIEWS
        if self.unseen is not None:
            return f"{self.unseen_products} products left out of a second training"
        return "held-out photos, their own product taken out of the gallery"


@dataclass
class CachedRun:
    model: keras.Model
    tracker: RecallEarlyStopping
    history: list[dict[str, float | str]]
    validation: str
    num_train: int
    num_val: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    held_out: HeldOut
    timings: dict[str, float]


def _embed(top: keras.Model, features: Any, batch: int = 256) -> np.ndarray:
    parts = [
        np.asarray(top.predict_on_batch(np.asarray(features[s : s + batch]).astype(np.float32)), np.float32)
        for s in range(0, len(features), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, int(top.output_shape[-1])), np.float32)


def _stratified(labels: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``limit`` indices with every label kept at least once (a gallery that can still hit)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    order = rng.permutation(len(labels))
    first: dict[int, int] = {}
    for i in order:
        first.setdefault(int(labels[i]), int(i))
    chosen = list(first.values())
    taken = set(chosen)
    chosen += [int(i) for i in order if int(i) not in taken][: max(0, limit - len(chosen))]
    return np.sort(np.asarray(chosen))


@dataclass
class Validation:
    """Which photos validate, and against which gallery (rows of the training set's activations)."""

    name: str
    train_rows: np.ndarray
    features: np.ndarray
    labels: np.ndarray
    gallery_rows: np.ndarray  # empty: unseen products, scored leave-one-out among themselves
    query_sources: list[int]


def _random_photos(labels: np.ndarray, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    held = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_val = min(len(members) - 1, round(len(members) * val_fraction))
        if n_val > 0:
            held[rng.choice(members, size=n_val, replace=False)] = True
    return held


# The validation of a catalog with one photo per product.
AUGMENTED_VIEWS = "augmented views of the catalog photos"


def choose_validation(
    config: TrainConfig,
    bottom: keras.Model,
    train_set: DecodedImages,
    val_set: DecodedImages | None,
    plain: Any,
    *,
    augmenter: Augmenter | None,
    val_fraction: float,
    rng: np.random.Generator,
) -> Validation:
    labels = train_set.labels
    everything = np.arange(len(labels))
    if val_set is not None:
        unseen = not set(np.unique(val_set.labels)) <= set(np.unique(labels))
        gallery = np.zeros(0, dtype=np.int64) if unseen else everything
        return Validation(
            "the validation photos given",
            everything,
            np.asarray(activations(bottom, val_set.images)),  # in memory: no spill asked
            val_set.labels,
            gallery,
            [],
        )
    if holdable(labels) and config.holdout in ("group", "photo"):
        if config.holdout == "group":
            name, held = (
                "held-out groups of look-alike photos",
                group_holdout(labels, pooled(plain), val_fraction=val_fraction, seed=config.seed),
            )
        else:
            name, held = "held-out random photos", _random_photos(labels, val_fraction, rng)
        train_rows, val_rows = np.flatnonzero(~held), np.flatnonzero(held)
        return Validation(name, train_rows, plain[val_rows], labels[val_rows], train_rows, val_rows.tolist())
    # One photo per product (or too few to hold any out): fresh views of the photos, against them all.
    if augmenter is None:
        raise TrainingDataError(
            "no product has enough photos to hold some out, and views need augmentation; train with augmentation"
        )
    sample = np.sort(rng.choice(len(labels), size=min(VIEW_QUERIES, len(labels)), replace=False))
    views = cache_views(
        bottom, train_set.images[sample], labels[sample], np.full(len(sample), 2, np.int32),
        augmenter=augmenter, seed=config.seed + 7919,
    )  # fmt: skip
    keep = views.view == 1  # the augmented view of each, not the photo itself
    return Validation(
        AUGMENTED_VIEWS,
        everything,
        views.features[keep],
        views.labels[keep],
        everything,
        sample[views.source[keep]].tolist(),
    )


def _companions(label_names: list[str], hard_negatives: dict[str, list[str]] | None) -> dict[int, list[int]]:
    index = {name: i for i, name in enumerate(label_names)}
    companions: dict[int, list[int]] = {}
    for name, others in (hard_negatives or {}).items():
        for other in others:
            if name in index and other in index:
                companions.setdefault(index[name], []).append(index[other])
                companions.setdefault(index[other], []).append(index[name])
    return companions


def _score_against_gallery(
    top: keras.Model,
    plain: Any,
    labels: np.ndarray,
    val: Validation,
    gallery_rows: np.ndarray,
    **kw: Any,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    queries = _embed(top, val.features)
    if not len(gallery_rows):  # unseen products: leave-one-out among the validation photos
        return (
            safe_retrieval_metrics(queries, val.labels, queries, val.labels, exclude_self=True, **kw),
            queries,
            queries,
            val.labels,
        )
    gallery = _embed(top, Rows(plain, gallery_rows))
    metrics = safe_retrieval_metrics(queries, val.labels, gallery, labels[gallery_rows], **kw)
    return metrics, queries, gallery, labels[gallery_rows]


class CacheProgress:
    """Logs caching's progress every ``every_s`` seconds with its rate and the time left, so a large
    catalog's caching time is known within its first minute."""

    def __init__(self, total: int, log: Callable[[str], None], every_s: float = 30.0) -> None:
        self.total, self.log, self.every_s = total, log, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last < self.every_s or self.done >= self.total:
            return
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        left = (self.total - self.done) / max(rate, 1e-9)
        self.log(f"cached {self.done}/{self.total} views, {rate:.1f} views/s, about {left / 60:.0f} min left")


def run_cached(
    config: TrainConfig,
    train_set: DecodedImages,
    val_set: DecodedImages | None,
    *,
    val_fraction: float,
    output: Path,
    progress: bool,
    on_epoch: EpochListener | None,
    log: Callable[[str], None],
    hard_negatives: dict[str, list[str]] | None = None,
) -> CachedRun:
    # Activations of every photo and every cached view go to files here, not memory (ml/disk_array.py):
    # training memory stays flat however large the catalog. Removed at the end, failed or not.
    scratch = output / "scratch"
    try:
        return _run_cached(
            config, train_set, val_set, val_fraction=val_fraction, scratch=scratch, output=output,
            progress=progress, on_epoch=on_epoch, log=log, hard_negatives=hard_negatives,
        )  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run_cached(
    config: TrainConfig,
    train_set: DecodedImages,
    val_set: DecodedImages | None,
    *,
    val_fraction: float,
    scratch: Path,
    output: Path,
    progress: bool,
    on_epoch: EpochListener | None,
    log: Callable[[str], None],
    hard_negatives: dict[str, list[str]] | None,
) -> CachedRun:
    timings: dict[str, float] = {}
    rng = np.random.default_rng(config.seed)
    model = config.build_model()
    bottom, top = split_embedding_model(model, config.trainable_blocks)
    make_top_trainable(top)
    augmenter = Augmenter(config.image_size) if config.augment else None

    t0 = time.perf_counter()
    plain = activations(bottom, train_set.images, spill=scratch / "plain.f16")
    labels = train_set.labels
    val = choose_validation(
        config, bottom, train_set, val_set, plain, augmenter=augmenter, val_fraction=val_fraction, rng=rng
    )
    timings["plain_activations_s"] = round(time.perf_counter() - t0, 1)
    train_labels = labels[val.train_rows]
    if len(np.unique(train_labels)) < 2:
        raise TrainingDataError("metric learning needs photos of at least two products to train on")

    t0 = time.perf_counter()
    per_image = views_per_image(
        train_labels, config.cache_views, config.min_views_per_product, config.max_cached_views
    )
    log(f"caching {int(per_image.sum())} views of {len(val.train_rows)} photos (bottom of {config.backbone})")
    cache = cache_views(
        bottom,
        Rows(train_set.images, val.train_rows),
        train_labels,
        per_image,
        augmenter=augmenter,
        seed=config.seed,
        spill=scratch / "views.f16",
        on_batch=CacheProgress(int(per_image.sum()), log),
    )
    timings["cache_s"] = round(time.perf_counter() - t0, 1)
    log(
        f"cached {len(cache)} views, {cache.features.shape[1:]} each, {cache.nbytes / 1e6:.0f} MB on disk, in {timings['cache_s']:.0f} s"
    )

    principal_head = config.head_init == "principal" or (
        config.head_init == "auto" and val.name == AUGMENTED_VIEWS
    )
    if principal_head:
        used = init_head_from_features(top, cache.features, seed=config.seed)
        log(f"projection head started from the principal directions of {used} cached views")

    # Scored each epoch against a capped gallery (every product kept), at the end against all of it.
    rows = val.gallery_rows
    epoch_gallery = rows[_stratified(labels[rows], config.val_gallery_max, rng)] if len(rows) else rows

    def score() -> float:
        return float(_score_against_gallery(top, plain, labels, val, epoch_gallery, ks=(1,))[0][RECALL_AT_1])

    tracker = RecallEarlyStopping(
        model, score, patience=config.patience, checkpoint_path=output / "checkpoint.keras", verbose=progress,
        on_epoch=on_epoch,
    )  # fmt: skip
    t0 = time.perf_counter()
    companions = _companions(train_set.label_names, hard_negatives)
    history = _fit(
        config,
        top,
        cache,
        [tracker],
        train_labels,
        Rows(plain, val.train_rows),
        companions,
        progress,
        log,
    )
    timings["train_s"] = round(time.perf_counter() - t0, 1)
    tracker.restore_best()

    t0 = time.perf_counter()
    unseen = _unseen_calibration(
        config,
        plain,
        labels,
        val,
        cache,
        max(1, tracker.best_epoch),
        companions,
        principal_head,
        progress,
        log,
    )
    timings["calibration_train_s"] = round(time.perf_counter() - t0, 1)

    # The trained top and the untrained backbone (average pooled, no head) on the same held-out photos
    # against the whole training gallery, from the same activations (their bottoms are one network).
    t0 = time.perf_counter()
    metrics, queries, gallery, g_labels = _score_against_gallery(top, plain, labels, val, rows)
    untrained = build_embedding_model(
        backbone=config.backbone,
        weights=config.weights,
        image_size=config.image_size,
        head=False,
        pooling="avg",
    )
    baseline = _score_against_gallery(
        split_embedding_model(untrained, config.trainable_blocks)[1], plain, labels, val, rows
    )[0]
    timings["evaluate_s"] = round(time.perf_counter() - t0, 1)
    return CachedRun(
        model=model,
        tracker=tracker,
        history=history,
        validation=val.name,
        num_train=len(val.train_rows),
        num_val=len(val.labels),
        metrics=metrics,
        baseline=baseline,
        held_out=HeldOut(
            queries,
            val.labels,
            gallery,
            g_labels,
            val.query_sources,
            unseen=unseen[0] if unseen else None,
            unseen_products=unseen[1] if unseen else 0,
            on_views=val.name == AUGMENTED_VIEWS,
        ),
        timings=timings,
    )


def _unseen_calibration(
    config: TrainConfig,
    plain: Any,
    labels: np.ndarray,
    val: Validation,
    cache: Any,
    epochs: int,
    companions: dict[int, list[int]],
    principal_head: bool,
    progress: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, np.ndarray], int] | None:
    """A second top trained from the same cache for ``epochs`` without a share of the products; its
    answers for the others' held-out photos and for every photo of the left-out products, as
    ``ml.calibration.fit`` takes them, and how many products were left out. None where the run
    validates on augmented views or on unseen products, or the catalog is too small."""
    if val.name == AUGMENTED_VIEWS or not len(val.gallery_rows):
        return None
    gallery_labels = labels[val.gallery_rows]
    left_out = choose_left_out(gallery_labels, val.labels, config.calibration_unseen, config.seed)
    if not len(left_out):
        return None
    log(
        f"calibration: training a second top for {epochs} epochs without {len(left_out)} of "
        f"{len(np.unique(gallery_labels))} products (their photos stand for products the shop does not sell)"
    )
    _, top = split_embedding_model(config.build_model(), config.trainable_blocks)
    make_top_trainable(top)
    if principal_head:
        init_head_from_features(top, cache.features, seed=config.seed)
    kept_rows = val.gallery_rows[~np.isin(gallery_labels, left_out)]
    _fit(
        dataclasses.replace(config, epochs=epochs),
        top,
        cache,
        [],
        labels[kept_rows],
        Rows(plain, kept_rows),
        companions,
        progress,
        log,
        exclude=left_out,
    )
    asked = ~np.isin(val.labels, left_out)
    left_out_rows = val.gallery_rows[np.isin(gallery_labels, left_out)]
    left_out_queries = np.concatenate(
        [_embed(top, Rows(plain, left_out_rows)), _embed(top, val.features[~asked])]
    )
    scored = scored_with_left_out(
        _embed(top, val.features[asked]),
        val.labels[asked],
        _embed(top, Rows(plain, kept_rows)),
        labels[kept_rows],
        left_out_queries,
    )
    return scored, len(left_out)


def _fit(
    config: TrainConfig,
    top: keras.Model,
    cache: Any,
    callbacks: list[keras.callbacks.Callback],
    train_labels: np.ndarray,
    train_plain: Any,
    companions: dict[int, list[int]],
    progress: bool,
    log: Callable[[str], None],
    exclude: np.ndarray | None = None,
) -> list[dict[str, float | str]]:
    sampler = CachedPKSampler(
        cache,
        p=config.batch_p,
        k=config.batch_k,
        steps_per_epoch=config.steps_per_epoch,
        seed=config.seed,
        companions=companions,
        exclude=exclude,
    )
    fit_model = top
    if uses_proxies(config.loss):
        classes = int(cache.labels.max()) + 1
        fit_model = build_training_model(top, num_classes=classes)
        fit_model.get_layer(PROXY_LAYER).set_proxies(
            class_centroids(_embed(top, train_plain), train_labels, classes)
        )
    schedule = keras.optimizers.schedules.CosineDecay(
        config.lr_top, decay_steps=max(1, config.epochs * len(sampler)), alpha=0.05
    )
    fit_model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss=get_loss(config.loss, **config.loss_kwargs)
    )
    log(
        f"training the top ({config.trainable_blocks} blocks and the head): {config.epochs} epochs x {len(sampler)} steps"
    )
    fit = fit_model.fit(sampler, epochs=config.epochs, callbacks=callbacks, verbose=2 if progress else 0)
    return [
        {"phase": "top", **{k: float(v[i]) for k, v in fit.history.items()}}
        for i in range(len(fit.history.get("loss", [])))
    ]
