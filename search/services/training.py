"""Train a candidate model on the catalog's own photos, evaluate it against the untrained backbone,
export it for TF Serving and record it as a candidate ModelVersion (promotion is `reindex`'s job)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from catalog.models import ProductImage
from ml.data import Item, TrainingDataError, check_trainable, decode_items, read_manifest, split_items
from search import selectors
from search.models import ModelKind, ModelVersion
from search.services.model_versions import model_version_register


@dataclass
class TrainOutcome:
    model: ModelVersion
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    wall_time_s: float


def catalog_items() -> tuple[list[Item], dict[str, str]]:
    """(file path, sku) for every catalog image, and path -> image id (for the held-out query set)."""
    items: list[Item] = []
    ids: dict[str, str] = {}
    for image in ProductImage.objects.select_related("product").order_by("product_id", "display_order"):
        path = default_storage.path(image.file.name)
        items.append((path, image.product.sku))
        ids[path] = str(image.pk)
    return items, ids


def _embed(model, images: np.ndarray) -> np.ndarray:
    from ml.train import embed_images

    return embed_images(model, images)


def evaluate_models(
    train_model_path: str, config, train_items: list[Item], val_items: list[Item]
) -> tuple[dict, dict]:
    """Recall@K / mAP@R of the trained model and of the untrained backbone on the same split."""
    import keras

    from ml.evaluate import retrieval_metrics
    from ml.export import load_keras_model
    from ml.model import build_embedding_model

    gallery = decode_items(train_items, config.image_size, progress=True, desc="decoding gallery")
    queries = decode_items(
        val_items, config.image_size, label_names=gallery.label_names, progress=True, desc="decoding queries"
    )
    trained = load_keras_model(train_model_path)
    metrics = retrieval_metrics(
        _embed(trained, queries.images), queries.labels, _embed(trained, gallery.images), gallery.labels
    )
    keras.backend.clear_session()
    baseline_model = build_embedding_model(
        backbone=config.backbone,
        weights=config.weights,
        image_size=config.image_size,
        head=False,
        pooling="avg",
    )
    baseline = retrieval_metrics(
        _embed(baseline_model, queries.images),
        queries.labels,
        _embed(baseline_model, gallery.images),
        gallery.labels,
    )
    return metrics, baseline


def train_candidate(
    *,
    config,
    manifest: Path | None = None,
    split_by: str = "photo",
    val_fraction: float = 0.1,
    on_stage: Callable[[str], None] | None = None,
) -> TrainOutcome:
    """``on_stage`` hears each step's name as it starts: "training", "evaluating", "exporting" (a job
    reports them as progress; search/services/training_jobs.py)."""
    from ml.evaluate import plot_report, recall_curve, write_report
    from ml.export import export_saved_model
    from ml.train import train

    started = time.perf_counter()
    if manifest is not None:
        items, ids = read_manifest(manifest), {}
    else:
        items, ids = catalog_items()
        if not items:
            raise TrainingDataError("the catalog has no images; import some first (manage.py import_catalog)")
    check_trainable(items, "the catalog" if manifest is None else f"manifest {manifest}")
    train_items, val_items = split_items(
        items, val_fraction=val_fraction, split_by=split_by, seed=config.seed
    )
    stage = on_stage or (lambda name: None)
    stage("training")
    result = train(config, train_items, val_items, progress=True)
    stage("evaluating")
    metrics, baseline = evaluate_models(result.model_path, config, train_items, val_items)

    out = Path(config.output_dir)
    # Per-epoch rows (both phases, in order) as the column lists the report and plot expect.
    history: dict[str, list[float]] = {}
    for row in result.history:
        for key, value in row.items():
            if isinstance(value, int | float):
                history.setdefault(key, []).append(float(value))
    report_path = write_report(
        out / "report.json",
        metrics,
        baseline=baseline,
        history=history,
        meta={"split_by": split_by, "train": result.to_json()},
    )
    plot_path = plot_report(
        out / "report.png",
        {"trained": recall_curve(metrics), "untrained backbone": recall_curve(baseline)},
        history,
    )
    stage("exporting")
    version = selectors.next_version_number()
    export = export_saved_model(
        result.model_path,
        settings.MODELS_DIR,
        settings.TF_SERVING_MODEL_NAME,
        version,
        backbone=config.backbone,
    )
    record = model_version_register(
        version=version,
        kind=ModelKind.TRAINED,
        backbone=config.backbone,
        embedding_dim=export.embedding_dim,
        image_size=export.image_size,
        export_path=str(export.path),
        keras_path=result.model_path,
        report_path=str(report_path),
        plot_path=str(plot_path),
        metrics={**metrics, "baseline": baseline, "split_by": split_by},
        config=json.loads(json.dumps(dataclasses.asdict(config), default=str)),
        eval_image_ids=[ids[str(src)] for src, _ in val_items if str(src) in ids],
    )
    return TrainOutcome(record, metrics, baseline, round(time.perf_counter() - started, 1))
