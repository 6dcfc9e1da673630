"""Train a candidate model on the catalog's own photos, score it against the untrained backbone on
held-out photos, calibrate its answers, export it for TF Serving and record it as a candidate
ModelVersion (promotion is the reindex job's)."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.storage import default_storage

from catalog.models import ProductImage
from ml import calibration
from ml.data import Item, TrainingDataError, check_trainable, read_manifest, split_items
from ml.recall_tracking import EpochListener
from search import selectors
from search.models import ModelKind, ModelVersion
from search.services.model_versions import model_version_register

if TYPE_CHECKING:
    from ml.train_config import TrainConfig
    from search.log_selectors import FeedbackExample


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


def _cropped_png(path: str, box: tuple[int, int, int, int]) -> bytes:
    """The shopper's crop of a kept search photo, read when training reads it."""
    import io

    from PIL import Image

    x, y, w, h = box
    with Image.open(path) as image:
        cropped = image.convert("RGB").crop((x, y, x + w, y + h))
    buffer = io.BytesIO()
    cropped.save(buffer, format="PNG")
    return buffer.getvalue()


def feedback_items(examples: Iterable[FeedbackExample]) -> tuple[list[Item], dict[str, list[str]]]:
    """Shoppers' clicks (search.log_selectors.feedback_examples) as training photos of the clicked
    product, cropped as the shopper cropped, and the products they skipped for it as hard negatives."""
    items: list[Item] = []
    negatives: dict[str, list[str]] = {}
    for example in examples:
        if example.crop is None:
            items.append((example.photo_path, example.sku))
        else:
            items.append((functools.partial(_cropped_png, example.photo_path, example.crop), example.sku))
        negatives.setdefault(example.sku, []).extend(example.negative_skus)
    return items, negatives


def _history_columns(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    # Per-epoch rows as the column lists the report and plot expect.
    history: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, int | float):
                history.setdefault(key, []).append(float(value))
    return history


def train_candidate(
    *,
    config: TrainConfig,
    manifest: Path | None = None,
    split_by: str = "photo",
    val_fraction: float = 0.1,
    on_stage: Callable[[str], None] | None = None,
    on_epoch: EpochListener | None = None,
    with_feedback: bool = False,
) -> TrainOutcome:
    """``on_stage`` hears each step's name as it starts: "training", "calibrating", "exporting";
    ``on_epoch`` hears (epoch, validation Recall@1, best) after every epoch (a job reports both as
    progress; search/jobs/training.py). ``with_feedback`` adds shoppers' clicks on searches whose
    photo was kept (SEARCH_LOG_PHOTOS) as training photos, and what they skipped as hard negatives."""
    from ml.evaluate import plot_report, recall_curve, write_report
    from ml.export import export_saved_model, int8_summary
    from ml.train import train
    from search.services.int8_photos import int8_photos

    started = time.perf_counter()
    ids: dict[str, str]
    if manifest is not None:
        items, ids = read_manifest(manifest), {}
    else:
        items, ids = catalog_items()
        if not items:
            raise TrainingDataError("the catalog has no images; import some first (manage.py import_catalog)")
    check_trainable(items, "the catalog" if manifest is None else f"manifest {manifest}")
    hard_negatives: dict[str, list[str]] = {}
    feedback_count = 0
    feedback_tally = None
    if with_feedback:
        from search.log_selectors import FeedbackTally, feedback_examples

        feedback_tally = FeedbackTally()
        # The gate's fifth of the shoppers stays out: it judges this model (search/services/gate.py).
        extra, hard_negatives = feedback_items(feedback_examples(tally=feedback_tally, part="train"))
        feedback_count = len(extra)
        items = list(items) + extra
        print(feedback_tally.summary(), flush=True)  # the command's output and a job's log
    if split_by == "product":  # unseen products: whole products held out
        train_items, val_items = split_items(
            items, val_fraction=val_fraction, split_by="product", seed=config.seed
        )
    else:  # ml.holdout chooses: groups of look-alike photos, or augmented views of one-photo catalogs
        train_items, val_items = list(items), None
    stage = on_stage or (lambda name: None)
    stage("training")
    result = train(
        config,
        train_items,
        val_items,
        progress=True,
        val_fraction=val_fraction,
        on_epoch=on_epoch,
        hard_negatives=hard_negatives or None,
    )
    metrics, baseline = result.to_json()["metrics"], result.to_json()["baseline"]

    out = Path(config.output_dir)
    stage("calibrating")
    fitted, calibration_plot, fitted_from = None, None, ""
    held = result.held_out
    if held is not None and len(held.query_labels) and len(held.gallery_labels):
        scored = held.scored()
        fitted = calibration.fit(scored)
        fitted_from = held.calibration_source
        calibration.write(out / "calibration.json", fitted)
        calibration_plot = calibration.plot(out / "calibration.png", scored, fitted)
    history = _history_columns(result.history)
    meta = {"split_by": split_by, "validation": result.validation, "train": result.to_json()}
    report_path = write_report(out / "report.json", metrics, baseline=baseline, history=history, meta=meta)
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
        # The trained model quantized on the shop's photos too; verified against its float file.
        int8_photos=int8_photos(config.image_size),
    )
    if val_items is not None:
        eval_ids = [ids[str(src)] for src, _ in val_items if str(src) in ids]
    elif held is not None and result.validation.startswith("held-out"):
        sources = [train_items[i][0] for i in held.query_sources]
        eval_ids = [ids[str(src)] for src in sources if isinstance(src, str | Path) and str(src) in ids]
    else:
        eval_ids = []  # validated on augmented views; the gate judges on held-out clicks or views (gate.py)
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
        metrics={
            **metrics,
            "baseline": baseline,
            "split_by": split_by,
            "validation": result.validation,
            "feedback_photos": feedback_count,
            "feedback_clicks": dataclasses.asdict(feedback_tally) if feedback_tally is not None else None,
        },
        config={
            **json.loads(json.dumps(dataclasses.asdict(config), default=str)),
            "int8": int8_summary(export.tflite_int8),
        },
        eval_image_ids=eval_ids,
        calibration={**fitted.to_json(), "source": fitted_from} if fitted is not None else None,
        calibration_plot_path=str(calibration_plot) if calibration_plot is not None else "",
    )
    return TrainOutcome(record, metrics, baseline, round(time.perf_counter() - started, 1))
