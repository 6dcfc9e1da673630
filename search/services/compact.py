"""Compact pretrained vectors: a projection fitted on the shop's own catalog photos, built into the
pretrained model (ml/projection.py, ml/model.py::with_projection) so every runtime emits the compact
vector. Learned whitening when at least half the products have two or more photos (pairs of one
product's photos teach it what to ignore), else PCA.

The first import finds almost no photos, so the pretrained model it makes is usually the raw one;
once the catalog has ``BOOTSTRAP_COMPACT_MIN_PHOTOS`` stored photos an import queues a job of kind
"compact_pretrained" (search/jobs/kinds/compact_pretrained.py), which makes a compact candidate here and moves
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
# Learned whitening (ml/projection.py::fit_whitening), chosen on the Grocery val split
# (bench/compact.py, docs/benchmarks.md). The ridge, times the pair covariance's mean eigenvalue: the
# best val R@1 on the shop's photos (0.581 raw -> 0.730 at 256-d) among the candidates (0.01-1.0,
# 256 or 128 dims) that lose nothing on products held out of the fit; the smaller ridges score more on
# the catalog fitted (0.767 at 0.03, 128-d) and lose on held-out products, the larger fit less.
WHITEN_RIDGE = 0.3
# Whitened only when at least this share of the sampled products has two or more photos: with fewer,
# the pairs teach what varies within a few products, and the products with one photo lose (val, the 81
# catalog images as gallery: 20 of 81 products with pairs 0.372 vs PCA's 0.443; 40 of 81: 0.426 vs
# 0.429), while the shop photos gain from 2 paired products on.
WHITEN_MIN_PAIRED_SHARE = 0.5


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


def _catalog_sample(cap: int) -> list[tuple[str, int]]:
    """(storage name, product id) of up to ``cap`` stored photos: products at random, each with up to
    ``max(2, cap // products)`` photos (ml/projection.py::sample_in_pairs), so products with several
    photos bring pairs for the whitening however large the catalog."""
    from ml.projection import sample_in_pairs

    rows = list(ProductImage.objects.order_by("pk").values_list("file", "product_id"))
    picked = sample_in_pairs([product for _, product in rows], cap, seed=0)
    return [rows[i] for i in picked]


def _fit(features: np.ndarray, products: list[int], dim: int) -> Any:
    """Learned whitening when at least half the sampled products have two or more photos, else PCA,
    centred by the catalog's kind as before."""
    from ml.projection import fit_projection, fit_whitening, paired_groups

    groups, _ = paired_groups(products)
    if groups and len(groups) >= WHITEN_MIN_PAIRED_SHARE * len(set(products)):
        return fit_whitening(features, products, dim, ridge=WHITEN_RIDGE)
    catalog_products = ProductImage.objects.values("product_id").distinct().count()
    center = stored_photo_count() >= CENTER_FROM_PHOTOS_PER_PRODUCT * max(1, catalog_products)
    return fit_projection(features, dim, center=center)


def fit_catalog_projection(raw_model: Any, *, dim: int | None = None) -> FittedProjection | None:
    """Embed a sample of the catalog's stored photos with ``raw_model`` (the pretrained model, raw
    1280-d output) and fit the projection; None below ``BOOTSTRAP_COMPACT_MIN_PHOTOS`` photos
    (readable ones) or when compact vectors are off.

    Bounded in time by ``BOOTSTRAP_COMPACT_MAX_PHOTOS``: EfficientNet-Lite0 at 348 px embeds about
    22-29 photos/s, decoding included, on 2 shared CPU cores (docs/benchmarks.md), so the default
    2,000 take about 90 s; fitting takes 2 s (PCA) to 4-8 s (whitening: two 1280-d eigen problems),
    and the export 5 s more; all of it 2-3x slower beside other jobs (docs/benchmarks.md).
    """
    dim = compact_dim() if dim is None else dim
    minimum = settings.BOOTSTRAP_COMPACT_MIN_PHOTOS
    if dim <= 0 or stored_photo_count() < minimum:
        return None
    started = time.perf_counter()
    size = int(raw_model.input_shape[1])
    features: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    products: list[int] = []

    def flush() -> None:
        if batch:
            out = raw_model.predict_on_batch(np.stack(batch).astype(np.float32))
            features.append(np.asarray(out, np.float32))
            batch.clear()

    for name, product in _catalog_sample(settings.BOOTSTRAP_COMPACT_MAX_PHOTOS):
        try:
            batch.append(image_limits.stored_photo_pixels(name, size))
        except (ImageRejected, FileNotFoundError, OSError):
            continue  # a photo that cannot be read now is left out of the fit, as indexing would
        products.append(product)
        if len(batch) >= EMBED_BATCH:
            flush()
    flush()
    matrix = np.concatenate(features) if features else np.zeros((0, 0), np.float32)
    if len(matrix) < minimum:
        return None
    projection = _fit(matrix, products, dim)
    fitted = FittedProjection(projection, time.perf_counter() - started)
    log.info(
        "fitted a %d-d projection (%s) on %d catalog photos in %.1f s (%.1f%% of the variance kept)",
        projection.out_dim, projection.method, projection.samples, fitted.seconds,
        100 * projection.explained,
    )  # fmt: skip
    return fitted
