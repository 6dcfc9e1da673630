"""Calibrating a model that was not trained here (the pretrained bootstrap model), from the catalog
itself: augmented views of catalog photos stand in for shoppers' photos of products in the catalog,
and the same views searched with their own product left out stand in for photos of products the shop
does not sell. Each view goes through the real path (the model's embedder, the vector store's grouped
search), so the thresholds fit what search answers. A trained model is calibrated on its held-out
photos when it is trained (search/services/training.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from catalog import image_limits
from catalog.models import IndexStatus, ProductImage
from ml import calibration
from ml.augment import Augmenter
from ml.preprocess import ImageRejected
from search.embedders import embedder_for
from search.models import ModelVersion
from search.vector_store import Hit, SearchFilter, vector_store

log = logging.getLogger(__name__)
SAMPLE = 300  # views searched: 600 grouped searches, a few seconds with exact search at 10k points
MIN_IMAGES = 20  # below this a fit says nothing; the model stays uncalibrated (hits carry no label)


def _scores(hits: Sequence[Hit]) -> tuple[int | None, float, float]:
    first = hits[0] if hits else None
    second = hits[1].score if len(hits) > 1 else -1.0
    return (first.product_id if first else None), (first.score if first else -1.0), second


def calibrate_from_catalog(model: ModelVersion, *, seed: int = 0) -> calibration.Calibration | None:
    """Fit and store ``model``'s thresholds from augmented views of its indexed catalog photos; None
    (and nothing stored) when the catalog has fewer than MIN_IMAGES indexed photos of two products."""
    rows = list(
        ProductImage.objects.filter(index_status=IndexStatus.INDEXED).values_list("pk", "file", "product_id")
    )
    if len(rows) < MIN_IMAGES or len({r[2] for r in rows}) < 2:
        return None
    rng = np.random.default_rng(seed)
    chosen = [rows[i] for i in sorted(rng.choice(len(rows), size=min(SAMPLE, len(rows)), replace=False))]
    augmenter = Augmenter(model.image_size)
    views, products = [], []
    for number, (_, name, product_id) in enumerate(chosen):
        try:
            pixels = image_limits.stored_photo_pixels(name, model.image_size)
        except (ImageRejected, FileNotFoundError):
            continue
        views.append(augmenter(pixels, np.random.default_rng([seed, number])))
        products.append(product_id)
    if len(views) < MIN_IMAGES:
        return None
    vectors = embedder_for(model).embed(np.stack(views))
    store = vector_store()
    in_score, in_margin, in_correct, out_score, out_margin = [], [], [], [], []
    for vector, product_id in zip(vectors, products, strict=True):
        top, s1, s2 = _scores(store.search(model.collection, vector, 2, None, group_by_product=True))
        in_score.append(s1)
        in_margin.append(s1 - s2)
        in_correct.append(top == product_id)
        outside = SearchFilter(exclude_product_ids=[product_id])
        _, u1, u2 = _scores(store.search(model.collection, vector, 2, outside, group_by_product=True))
        out_score.append(u1)
        out_margin.append(u1 - u2)
    scored = {
        "in_score": np.array(in_score, np.float32),
        "in_margin": np.array(in_margin, np.float32),
        "in_correct": np.array(in_correct, bool),
        "out_score": np.array(out_score, np.float32),
        "out_margin": np.array(out_margin, np.float32),
    }
    fitted = calibration.fit(scored)
    folder = Path(settings.MODELS_DIR) / "calibration" / str(model.version)
    plot = calibration.plot(folder / "calibration.png", scored, fitted)
    ModelVersion.objects.filter(pk=model.pk).update(
        calibration={**fitted.to_json(), "source": "augmented catalog views"}, calibration_plot_path=str(plot)
    )
    log.info(
        "calibrated model v%s on %d catalog views: same >= %.3f (margin %.2f), precision %.3f, no-match %.3f",
        model.version, fitted.queries, fitted.same, fitted.margin, fitted.precision, fitted.no_match_unseen,
    )  # fmt: skip
    return fitted
