"""Calibrating a model that was not trained here (the pretrained bootstrap model), from the catalog
itself. Two ways, by what the catalog has:

- Several photos per product (a shop with store photos): each such product's photos are grouped by
  look (ml/holdout.py: frames of one shoot are near-twins) and a fifth of them, whole groups, stand
  in for shoppers' photos: each is searched against the catalog without its own look-alikes ("same"
  right?) and without its product at all, a product the shop does not sell ("no match"?). A model
  that was never trained on these products is no closer to them for having seen them, so leaving a
  product out is an honest stand-in for one the shop lacks. The query vectors are the photos' stored
  ones; the other products' scores come from the vector store's grouped search, as search answers.
- One photo per product (or too few held-out photos): augmented views of the catalog photos (a crop,
  a flip, other light) stand in for shoppers' photos, searched with and without their own product.

A trained model is calibrated on its held-out photos when it is trained (search/services/training.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from catalog import image_limits
from catalog.models import IndexStatus, ProductImage
from ml import calibration
from ml.augment import Augmenter
from ml.holdout import MIN_PHOTOS_TO_HOLD_OUT, group_holdout
from ml.preprocess import ImageRejected
from search.embedders import embedder_for
from search.models import ModelVersion
from search.vector_store import Hit, SearchFilter, vector_store

log = logging.getLogger(__name__)
SAMPLE = 300  # views searched: 600 grouped searches, a few seconds with exact search at 10k points
MIN_IMAGES = 20  # below this a fit says nothing; the model stays uncalibrated (hits carry no label)
# Held-out look-alike groups: the share of a product's photos held out (as training holds out), and
# how many stored vectors are read to find them (products drawn at random until this many photos).
HELD_OUT_FRACTION = 0.2
HELD_OUT_MAX_PHOTOS = 5000
SOURCE_GROUPS = "held-out look-alike groups of the catalog's photos"
SOURCE_VIEWS = calibration.SOURCE_VIEWS


def says_no_match(thresholds: dict[str, Any]) -> bool:
    """Whether answers under these thresholds may say "no match" when no hit is "same": not when they
    were fitted on augmented catalog views alone (one photo per product). Views are the catalog's own
    pictures a crop and a light away, so their threshold sits above nearly every shopper's photo: on
    the Grocery one-photo catalog it said "same" for none of the 2,485 test photos, and "no exact
    match" then headed every answer, the third whose first hit was right included. "Same" is still
    said for a photo that is nearly the catalog's own picture (a screenshot of the shop's page)."""
    return thresholds.get("source") != SOURCE_VIEWS


def _scores(hits: Sequence[Hit]) -> tuple[int | None, float, float]:
    first = hits[0] if hits else None
    second = hits[1].score if len(hits) > 1 else -1.0
    return (first.product_id if first else None), (first.score if first else -1.0), second


def calibrate_from_catalog(model: ModelVersion, *, seed: int = 0) -> calibration.Calibration | None:
    """Fit and store ``model``'s thresholds from the catalog (held-out look-alike groups of its photos
    where products have several, else augmented views); None (and nothing stored) when the catalog has
    fewer than MIN_IMAGES indexed photos of two products."""
    rows = list(
        ProductImage.objects.filter(index_status=IndexStatus.INDEXED).values_list("pk", "file", "product_id")
    )
    if len(rows) < MIN_IMAGES or len({r[2] for r in rows}) < 2:
        return None
    scored, source = _scored_on_held_out_groups(model, rows, seed), SOURCE_GROUPS
    if scored is None:
        scored, source = _scored_on_views(model, rows, seed), SOURCE_VIEWS
    if scored is None:
        return None
    fitted = calibration.fit(scored)
    folder = Path(settings.MODELS_DIR) / "calibration" / str(model.version)
    plot = calibration.plot(folder / "calibration.png", scored, fitted)
    ModelVersion.objects.filter(pk=model.pk).update(
        calibration={**fitted.to_json(), "source": source}, calibration_plot_path=str(plot)
    )
    log.info(
        "calibrated model v%s on %d %s: same >= %.3f (margin %.2f), precision %.3f, no-match %.3f",
        model.version, fitted.queries, source, fitted.same, fitted.margin, fitted.precision,
        fitted.no_match_unseen,
    )  # fmt: skip
    return fitted


def _scored(
    in_rows: list[tuple[float, float, bool]], out_rows: list[tuple[float, float]]
) -> dict[str, np.ndarray]:
    return {
        "in_score": np.array([r[0] for r in in_rows], np.float32),
        "in_margin": np.array([r[1] for r in in_rows], np.float32),
        "in_correct": np.array([r[2] for r in in_rows], bool),
        "out_score": np.array([r[0] for r in out_rows], np.float32),
        "out_margin": np.array([r[1] for r in out_rows], np.float32),
    }


def _scored_on_held_out_groups(
    model: ModelVersion, rows: list[tuple[Any, str, int]], seed: int
) -> dict[str, np.ndarray] | None:
    """Held-out look-alike groups as queries; None when too few products have photos to hold out."""
    by_product: dict[int, list[str]] = {}
    for pk, _, product_id in rows:
        by_product.setdefault(product_id, []).append(str(pk))
    rng = np.random.default_rng(seed)
    eligible = [p for p in sorted(by_product) if len(by_product[p]) >= MIN_PHOTOS_TO_HOLD_OUT]
    chosen_ids: list[str] = []
    chosen_products: list[int] = []
    for index in rng.permutation(len(eligible)):
        product_id = eligible[int(index)]
        if chosen_ids and len(chosen_ids) + len(by_product[product_id]) > HELD_OUT_MAX_PHOTOS:
            break
        chosen_ids += by_product[product_id]
        chosen_products += [product_id] * len(by_product[product_id])
    if not chosen_ids:
        return None
    store = vector_store()
    # Up to HELD_OUT_MAX_PHOTOS vectors: read a batch at a time, each kept as float32 at once.
    found = {image_id: vector for image_id, vector, _ in store.vectors(model.collection, chosen_ids)}
    kept = [(i, p) for i, p in zip(chosen_ids, chosen_products, strict=True) if i in found]
    if not kept:
        return None
    vectors = np.array([found[i] for i, _ in kept], np.float32)
    labels = np.array([p for _, p in kept], np.int64)
    held = group_holdout(labels, vectors, val_fraction=HELD_OUT_FRACTION, seed=seed)
    queries = np.flatnonzero(held)
    if len(queries) < MIN_IMAGES:
        return None
    queries = np.sort(rng.choice(queries, size=min(SAMPLE, len(queries)), replace=False))
    in_rows: list[tuple[float, float, bool]] = []
    out_rows: list[tuple[float, float]] = []
    for q in queries:
        product_id = int(labels[q])
        # The product's best photo outside the query's held-out group: what search would rank it by.
        own_gallery = vectors[(labels == product_id) & ~held]
        own = float(np.max(own_gallery @ vectors[q]))
        others = store.search(
            model.collection,
            vectors[q],
            2,
            SearchFilter(exclude_product_ids=[product_id]),
            group_by_product=True,
        )
        _, o1, o2 = _scores(others)
        ranked = sorted([own, o1, o2], reverse=True)
        in_rows.append((ranked[0], ranked[0] - ranked[1], own >= o1))
        out_rows.append((o1, o1 - o2))
    return _scored(in_rows, out_rows)


def _scored_on_views(
    model: ModelVersion, rows: list[tuple[Any, str, int]], seed: int
) -> dict[str, np.ndarray] | None:
    """Augmented views of catalog photos as queries, with and without their own product."""
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
    in_rows: list[tuple[float, float, bool]] = []
    out_rows: list[tuple[float, float]] = []
    for vector, product_id in zip(vectors, products, strict=True):
        top, s1, s2 = _scores(store.search(model.collection, vector, 2, None, group_by_product=True))
        in_rows.append((s1, s1 - s2, top == product_id))
        outside = SearchFilter(exclude_product_ids=[product_id])
        _, u1, u2 = _scores(store.search(model.collection, vector, 2, outside, group_by_product=True))
        out_rows.append((u1, u1 - u2))
    return _scored(in_rows, out_rows)
