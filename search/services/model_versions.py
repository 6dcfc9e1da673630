"""Registering and activating model versions, and the bootstrap model that makes a fresh catalog
searchable before any training."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from search import selectors
from search.models import ModelKind, ModelStatus, ModelVersion
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
    """Make sure some model is active; with none at all, export the pretrained backbone and activate it."""
    active = selectors.active_model()
    if active is not None:
        return BootstrapResult(active, created=False)
    from ml.export import export_saved_model
    from ml.model import build_embedding_model

    weights = weights or settings.BACKBONE_WEIGHTS
    size = image_size or settings.BOOTSTRAP_IMAGE_SIZE
    backbone = settings.BOOTSTRAP_BACKBONE
    # Average pooling: the measured baseline for the untrained backbone (R@1 0.561 on Grocery photos).
    model = build_embedding_model(
        backbone=backbone, weights=weights, image_size=size, head=False, pooling="avg"
    )
    version = selectors.next_version_number()
    result = export_saved_model(model, settings.MODELS_DIR, settings.TF_SERVING_MODEL_NAME, version)
    record = model_version_register(
        version=version,
        kind=ModelKind.BOOTSTRAP,
        backbone=backbone,
        embedding_dim=result.embedding_dim,
        image_size=result.image_size,
        export_path=str(result.path),
        config={"weights": str(weights), "head": False, "pooling": "avg"},
    )
    vector_store().ensure_collection(record.collection, record.embedding_dim)
    model_activate(record)
    log.info("bootstrapped model v%s (%s, %d-d)", version, backbone, result.embedding_dim)
    return BootstrapResult(record, created=True)
