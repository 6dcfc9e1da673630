"""Compact pretrained vectors: a PCA projection fitted on the shop's own catalog photos, built into
the pretrained model (ml/projection.py, ml/model.py::with_projection) so every runtime emits the
compact vector.

The first import finds almost no photos, so the pretrained model it makes is usually the raw one;
once the catalog has ``BOOTSTRAP_COMPACT_MIN_PHOTOS`` stored photos an import queues a job of kind
"compact_pretrained" (search/services/job_kinds.py), which makes a compact candidate here and moves
the index to it through the ordinary reindex job (and its gate).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from catalog import image_limits
from catalog.models import ProductImage
from ml.preprocess import ImageRejected
from search import selectors
from search.errors import SearchError
from search.models import ModelKind, ModelVersion

log = logging.getLogger(__name__)
EMBED_BATCH = 32
# Centred or not, chosen on the Grocery val split (bench/compact.py, docs/benchmarks.md), by the kind
# of catalog. Store photos (several per product): centring on their mean removes what shoppers'
# photos share, and wins (256-d, val R@1 shop photos 0.581 centred vs 0.564 not, raw 0.581; one photo
# 0.436 vs 0.395, raw 0.385). Web-shop images alone (one per product): centring on their mean costs
# (val one photo 0.345 centred vs 0.385 not, raw 0.385). So centre when most products have 2+ photos.
CENTER_FROM_PHOTOS_PER_PRODUCT = 1.5


class CompactError(SearchError):
    """A compact pretrained model cannot be made now; the message says why in one line."""

    def __init__(self, message: str) -> None:
        super().__init__("compact_refused", message)


@dataclass(frozen=True)
class FittedProjection:
    projection: Any  # ml.projection.Projection
    seconds: float  # embedding the sample and fitting

    def config(self) -> dict[str, Any]:
        """What a model version records about its projection (``ModelVersion.config["compact"]``)."""
        return {**self.projection.summary(), "fit_s": round(self.seconds, 1)}


def compact_dim() -> int:
    """The compact dimension to fit (0: compact vectors are off)."""
    return max(0, int(settings.BOOTSTRAP_COMPACT_DIM))


def stored_photo_count() -> int:
    return ProductImage.objects.count()


def compact_possible() -> bool:
    """Compact vectors are on and the catalog has enough stored photos to fit them on."""
    return compact_dim() > 0 and stored_photo_count() >= settings.BOOTSTRAP_COMPACT_MIN_PHOTOS


def is_raw_pretrained(model: ModelVersion | None) -> bool:
    return model is not None and model.kind == ModelKind.BOOTSTRAP and "compact" not in (model.config or {})


def compact_due() -> bool:
    """After an import: the active model is the raw pretrained one, the catalog now has enough photos,
    and no compact pretrained model was made before (one the gate rejected is not retried by itself;
    ``manage.py bootstrap_model --compact`` makes another)."""
    if not is_raw_pretrained(selectors.active_model()) or not compact_possible():
        return False
    return not ModelVersion.objects.filter(kind=ModelKind.BOOTSTRAP, config__has_key="compact").exists()


def _catalog_sample(cap: int) -> list[str]:
    """Storage names of up to ``cap`` stored photos: one of every product first, then more."""
    from ml.projection import sample_per_product

    rows = list(ProductImage.objects.order_by("pk").values_list("file", "product_id"))
    picked = sample_per_product([product for _, product in rows], cap, seed=0)
    return [rows[i][0] for i in picked]


def fit_catalog_projection(raw_model: Any, *, dim: int | None = None) -> FittedProjection | None:
    """Embed a sample of the catalog's stored photos with ``raw_model`` (the pretrained model, raw
    1280-d output) and fit the projection; None below ``BOOTSTRAP_COMPACT_MIN_PHOTOS`` photos
    (readable ones) or when compact vectors are off.

    Bounded in time by ``BOOTSTRAP_COMPACT_MAX_PHOTOS``: EfficientNet-Lite0 at 348 px embeds about
    22-29 photos/s, decoding included, on 2 shared CPU cores (docs/benchmarks.md), so the default
    2,000 take about 90 s; fitting takes 2 s and the export 5 s more.
    """
    from ml.projection import fit_projection

    dim = compact_dim() if dim is None else dim
    minimum = settings.BOOTSTRAP_COMPACT_MIN_PHOTOS
    if dim <= 0 or stored_photo_count() < minimum:
        return None
    started = time.perf_counter()
    size = int(raw_model.input_shape[1])
    features, batch = [], []

    def flush() -> None:
        if batch:
            out = raw_model.predict_on_batch(np.stack(batch).astype(np.float32))
            features.append(np.asarray(out, np.float32))
            batch.clear()

    for name in _catalog_sample(settings.BOOTSTRAP_COMPACT_MAX_PHOTOS):
        try:
            batch.append(image_limits.stored_photo_pixels(name, size))
        except (ImageRejected, FileNotFoundError, OSError):
            continue  # a photo that cannot be read now is left out of the fit, as indexing would
        if len(batch) >= EMBED_BATCH:
            flush()
    flush()
    matrix = np.concatenate(features) if features else np.zeros((0, 0), np.float32)
    if len(matrix) < minimum:
        return None
    products = ProductImage.objects.values("product_id").distinct().count()
    center = stored_photo_count() >= CENTER_FROM_PHOTOS_PER_PRODUCT * max(1, products)
    projection = fit_projection(matrix, dim, center=center)
    fitted = FittedProjection(projection, time.perf_counter() - started)
    log.info(
        "fitted a %d-d projection on %d catalog photos in %.1f s (%.1f%% of the variance kept)",
        projection.out_dim, projection.samples, fitted.seconds, 100 * projection.explained,
    )  # fmt: skip
    return fitted


def compact_candidate_make(*, weights: str | None = None) -> ModelVersion:
    """Export the pretrained model with a projection fitted on the catalog now, as a candidate (the
    caller reindexes to it, through the gate). Raises CompactError when compact vectors are off or
    the catalog has too few photos."""
    from search.services.model_versions import pretrained_export

    if compact_dim() <= 0:
        raise CompactError("Compact vectors are off (BOOTSTRAP_COMPACT_DIM=0).")
    count = stored_photo_count()
    if count < settings.BOOTSTRAP_COMPACT_MIN_PHOTOS:
        raise CompactError(
            f"The catalog has {count} photo(s); a compact pretrained model is fitted on at least "
            f"{settings.BOOTSTRAP_COMPACT_MIN_PHOTOS} (BOOTSTRAP_COMPACT_MIN_PHOTOS)."
        )
    return pretrained_export(weights=weights, compact=True, require_compact=True)
