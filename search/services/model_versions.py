"""Registering and activating model versions, and the bootstrap model that makes a fresh catalog
searchable before any training."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from search import selectors
from search.errors import NoActiveModel
from search.models import ModelKind, ModelStatus, ModelVersion
from search.services.compact import CompactError, compact_dim, stored_photo_count
from search.services.locks import exclusive
from search.vector_store import ALIAS, collection_name, vector_store

log = logging.getLogger(__name__)


def collection_for(version: int) -> str:
    return collection_name(str(version))


@transaction.atomic
def model_version_register(
    *,
    version: int,
    kind: str,
    backbone: str,
    embedding_dim: int,
    image_size: int,
    export_path: str,
    keras_path: str = "",
    report_path: str = "",
    plot_path: str = "",
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    eval_image_ids: list[str] | None = None,
    calibration: dict[str, Any] | None = None,
    calibration_plot_path: str = "",
) -> ModelVersion:
    return ModelVersion.objects.create(
        version=version,
        name=settings.TF_SERVING_MODEL_NAME,
        kind=kind,
        backbone=backbone,
        embedding_dim=embedding_dim,
        image_size=image_size,
        export_path=export_path,
        keras_path=keras_path,
        report_path=report_path,
        plot_path=plot_path,
        metrics=metrics or {},
        config=config or {},
        eval_image_ids=eval_image_ids or [],
        calibration=calibration or {},
        calibration_plot_path=calibration_plot_path,
        collection=collection_for(version),
        status=ModelStatus.CANDIDATE,
    )


def model_activate(model: ModelVersion) -> ModelVersion | None:
    """Make ``model`` the active one; return the previously active model (kept for rollback).

    The database row is the source of truth for which collection a query searches, so a query is
    embedded and searched by the same model; the server alias follows it for outside readers.
    """
    with transaction.atomic():
        previous = ModelVersion.objects.select_for_update().filter(status=ModelStatus.ACTIVE).first()
        if previous is not None and previous.pk == model.pk:
            return None
        if previous is not None:
            previous.status = ModelStatus.RETIRED
            previous.save(update_fields=["status"])
        model.status = ModelStatus.ACTIVE
        model.promoted_at = timezone.now()
        model.save(update_fields=["status", "promoted_at"])
        vector_store().set_alias(ALIAS, model.collection)
        selectors.forget_active_model()  # this process sees it at once; others within ACTIVE_CACHE_S
        transaction.on_commit(selectors.forget_active_model)
    return previous


@dataclass(frozen=True)
class BootstrapResult:
    model: ModelVersion
    created: bool


def bootstrap_model_ensure(*, weights: str | None = None, image_size: int | None = None) -> BootstrapResult:
    """Make sure some model is active; with none at all, export the pretrained backbone and activate it.

    Once, however many imports, uploads and commands ask at the same moment: they queue on a lock and
    all but the first find the model the first one made.
    """
    active = selectors.active_model()
    if active is not None:
        return BootstrapResult(active, created=False)
    with exclusive("bootstrap-model"):
        active = selectors.active_model()
        if active is not None:
            return BootstrapResult(active, created=False)
        return _bootstrap(weights, image_size)


def _bootstrap(weights: str | None, image_size: int | None) -> BootstrapResult:
    record = pretrained_export(weights=weights, image_size=image_size, compact=compact_dim() > 0)
    vector_store().ensure_collection(record.collection, record.embedding_dim)
    model_activate(record)
    log.info("bootstrapped model v%s (%s, %d-d)", record.version, record.backbone, record.embedding_dim)
    return BootstrapResult(record, created=True)


def pretrained_export(
    *, weights: str | None = None, image_size: int | None = None, compact: bool, require_compact: bool = False
) -> ModelVersion:
    """Export the pretrained backbone (average-pooled, L2-normalised) and register it as a candidate.

    With ``compact``, a catalog with enough stored photos gets a projection fitted on them built in
    (search/services/compact.py); with fewer the model is the raw one, unless ``require_compact``,
    which raises CompactError before exporting anything.
    """
    from ml.export import export_saved_model, int8_summary
    from ml.model import build_embedding_model, with_projection
    from ml.train_args import parse_weights
    from search.services.compact import fit_catalog_projection
    from search.services.int8_photos import int8_photos

    weights = parse_weights(weights or settings.BACKBONE_WEIGHTS)
    size = image_size or settings.BOOTSTRAP_IMAGE_SIZE
    backbone = settings.BOOTSTRAP_BACKBONE
    # Average pooling: the measured baseline for the untrained backbone (R@1 0.561 on Grocery photos).
    model = build_embedding_model(
        backbone=backbone, weights=weights, image_size=size, head=False, pooling="avg"
    )
    config: dict[str, Any] = {"weights": str(weights or "none"), "head": False, "pooling": "avg"}
    fitted = fit_catalog_projection(model) if compact else None
    if fitted is not None:
        model = with_projection(model, fitted.projection)
        config["compact"] = fitted.config()
    elif require_compact:
        raise CompactError("Too few readable catalog photos to fit a compact projection on.")
    version = selectors.next_version_number()
    started = time.perf_counter()
    result = export_saved_model(
        model, settings.MODELS_DIR, settings.TF_SERVING_MODEL_NAME, version, int8_photos=int8_photos(size)
    )
    config["int8"] = int8_summary(result.tflite_int8)
    if fitted is not None:
        # Beside the export, for whoever wants the numbers; the model itself already holds them.
        fitted.projection.save(result.path / "assets.extra" / "projection.npz")
        config["compact"]["export_s"] = round(time.perf_counter() - started, 1)
    return model_version_register(
        version=version,
        kind=ModelKind.BOOTSTRAP,
        backbone=backbone,
        embedding_dim=result.embedding_dim,
        image_size=result.image_size,
        export_path=str(result.path),
        config=config,
    )


# After a failed bootstrap (no weights file, no internet for the download), the next attempts within
# this long fail at once with the same message instead of trying again: an import of a thousand lines
# would otherwise try a thousand times. The images stay pending; the sweeper tries later.
BOOTSTRAP_RETRY_AFTER_S = 60.0
_bootstrap_failure: tuple[float, str] | None = None


class BootstrapFailed(NoActiveModel):
    """No model is active and the pretrained one could not be made (transient for indexing tasks)."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.message = (
            f"No active model, and the pretrained one could not be made: {detail} "
            "(set BACKBONE_WEIGHTS to a local weights file, or run `manage.py bootstrap_model --weights PATH`)."
        )
        self.args = (self.message,)


def bootstrap_model_auto() -> ModelVersion:
    """What indexing does when no model is active (AUTO_BOOTSTRAP_MODEL): make the pretrained one.
    Never called from a search request: a shopper never waits for an export."""
    global _bootstrap_failure
    now = time.monotonic()
    if _bootstrap_failure is not None and now - _bootstrap_failure[0] < BOOTSTRAP_RETRY_AFTER_S:
        raise BootstrapFailed(_bootstrap_failure[1])
    try:
        result = bootstrap_model_ensure()
    except Exception as exc:
        detail = " ".join(str(exc).split())[:500] or type(exc).__name__
        _bootstrap_failure = (now, detail)
        log.warning("could not make the pretrained model: %s", detail)
        raise BootstrapFailed(detail) from exc
    _bootstrap_failure = None
    if result.created:
        log.info("no model was active: made and activated the pretrained one, v%s", result.model.version)
    return result.model


def model_version_relocate(model: ModelVersion, *, paths: dict[str, str]) -> ModelVersion:
    """Point a version's file fields (export_path, report_path, ...) at where its files are now: a
    restore puts them under this machine's MODELS_DIR, wherever the backup found them."""
    allowed = {"export_path", "keras_path", "report_path", "plot_path", "calibration_plot_path"}
    unknown = set(paths) - allowed
    if unknown:
        raise ValueError(f"not a file field of a model version: {sorted(unknown)}")
    for name, value in paths.items():
        setattr(model, name, value)
    model.save(update_fields=sorted(paths))
    return model


def compact_candidate_make(*, weights: str | None = None) -> ModelVersion:
    """The compact pretrained model: export the pretrained model with a projection fitted on the catalog now, as a candidate (the
    caller reindexes to it, through the gate). Raises CompactError when compact vectors are off or
    the catalog has too few photos."""
    if compact_dim() <= 0:
        raise CompactError("Compact vectors are off (BOOTSTRAP_COMPACT_DIM=0).")
    count = stored_photo_count()
    if count < settings.BOOTSTRAP_COMPACT_MIN_PHOTOS:
        raise CompactError(
            f"The catalog has {count} photo(s); a compact pretrained model is fitted on at least "
            f"{settings.BOOTSTRAP_COMPACT_MIN_PHOTOS} (BOOTSTRAP_COMPACT_MIN_PHOTOS)."
        )
    return pretrained_export(weights=weights, compact=True, require_compact=True)
