"""Balanced answers for a catalog with one photo per product (ml/balance.py has the method and why).

Photo searches log their query vector (search_logs); once enough have been logged for the active
model, ``balance_fit`` fits an offset per product on the most recent of them and stores it with the
model; ``reorder`` adds it to each hit's similarity when a search runs. The hits keep their own
similarity as their score: the offset decides the order only. Nothing happens on a catalog whose
products mostly have several photos (measured: balancing lost there), below ``MIN_QUERIES`` logged
searches, or with SEARCH_BALANCE off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.utils import timezone

from catalog import selectors as catalog_selectors
from ml.balance import TEMPERATURE, offsets_from_similarities
from search import log_selectors
from search.models import ModelVersion
from search.vector_store import Hit, vector_store

log = logging.getLogger(__name__)

# Logged photo searches needed before a first fit. Chosen on the val photos: a pool of 300 shoppers'
# photos kept the gain of the whole 2,640 (0.500 against 0.503), so a few hundred suffice.
MIN_QUERIES = 200
# The most recent searches a fit uses (its kernel is MAX_QUERIES x products in float64).
MAX_QUERIES = 3000
# Larger catalogs are left as they are: at 20,000 products and 3,000 searches a fit takes about 4 s and
# 0.75 GB (the kernel in float64; measured on random similarities, this 2-core VM).
MAX_PRODUCTS = 20_000
# A one-photo catalog: at least this share of its active products have a single image.
ONE_PHOTO_SHARE = 0.8
# Products fetched beyond the answer's length, so that one lifted by its offset can enter it (offsets
# spread about +-0.1 on the Grocery catalog; the top hits' similarities differ by less).
EXTRA_DEPTH = 20


# Why nothing was fitted, in words (the job's summary and the model's admin page).
SKIPPED = {
    "few_searches": f"fewer than {MIN_QUERIES} photo searches are logged for the model",
    "several_photos": "most products have several photos (balancing is for one photo per product)",
    "too_many_products": f"the catalog has more than {MAX_PRODUCTS:,} products",
}


@dataclass(frozen=True)
class BalanceFit:
    queries: int
    products: int
    skipped: str = ""  # why nothing was fitted: a key of SKIPPED


# The parsed offsets of the fit in use, by (model, fit time): parsed once per fit and process, not per
# search (a shop of 20,000 products has as many entries).
_parsed: dict[tuple[int, str], dict[int, float]] = {}


def active_offsets(model: ModelVersion) -> dict[int, float] | None:
    """The model's product offsets, or None (not fitted, or SEARCH_BALANCE off)."""
    if not settings.SEARCH_BALANCE or not (model.balance or {}).get("offsets"):
        return None
    key = (model.pk, str(model.balance.get("fitted_at", "")))
    offsets = _parsed.get(key)
    if offsets is None:
        offsets = {int(pid): float(o) for pid, o in model.balance.get("offsets", {}).items()}
        _parsed.clear()  # one fit is in use at a time
        _parsed[key] = offsets
    return offsets


def reorder(hits: list[Hit], offsets: dict[int, float]) -> tuple[list[Hit], bool]:
    """``hits`` (one per product, best first) ordered by similarity plus their product's offset (a
    product the fit did not know gets none); and whether the first hit changed."""
    if not hits:
        return hits, False
    ordered = sorted(hits, key=lambda h: h.score + offsets.get(h.product_id, 0.0), reverse=True)
    return ordered, ordered[0].product_id != hits[0].product_id


def balance_due(model: ModelVersion) -> bool:
    """Whether enough photo searches were logged for ``model``: ``MIN_QUERIES`` before a first look; after
    one (a fit, or a catalog found not to qualify), as many new ones as it counted (at most
    ``MAX_QUERIES``), so the pool has renewed and a skipped catalog is not looked at every pass."""
    if not settings.SEARCH_BALANCE or not model.collection:
        return False
    state = model.balance or {}
    if not state.get("checked_at"):
        return log_selectors.query_vector_count(model.version) >= MIN_QUERIES
    since = datetime.fromisoformat(str(state["checked_at"]))
    wanted = max(MIN_QUERIES, min(int(state.get("queries", 0)), MAX_QUERIES))
    return log_selectors.query_vector_count(model.version, since=since) >= wanted


def balance_fit(model: ModelVersion) -> BalanceFit:
    """Fit the offsets of ``model`` on its most recent logged photo searches and store them. A catalog
    that does not qualify gets the reason stored instead (and loses earlier offsets: a shop that added
    photos stops using them)."""
    share, products = catalog_selectors.single_image_share()
    if products > MAX_PRODUCTS:
        return _skip(model, BalanceFit(0, products, skipped="too_many_products"))
    if share < ONE_PHOTO_SHARE:
        return _skip(model, BalanceFit(0, products, skipped="several_photos"))
    queries = log_selectors.recent_query_vectors(model.version, MAX_QUERIES, model.embedding_dim)
    if len(queries) < MIN_QUERIES:
        return BalanceFit(len(queries), products, skipped="few_searches")
    product_ids, gallery = _gallery(model)
    if not product_ids:
        return BalanceFit(len(queries), 0, skipped="few_searches")
    # A product with a few images is scored by its best one at search time: its column here is its
    # images' best similarity to each query, as the grouped search would see it.
    order = sorted(set(product_ids))
    column = {pid: n for n, pid in enumerate(order)}
    sims = queries @ gallery.T
    best = np.full((len(queries), len(order)), -1.0, dtype=np.float32)
    for j, pid in enumerate(product_ids):
        best[:, column[pid]] = np.maximum(best[:, column[pid]], sims[:, j])
    del sims  # the fit's kernel is as large again
    offsets = offsets_from_similarities(best)
    now = timezone.now().isoformat()
    model.balance = {
        "offsets": {str(pid): round(float(o), 5) for pid, o in zip(order, offsets, strict=True)},
        "queries": len(queries),
        "products": len(order),
        "temperature": TEMPERATURE,
        "fitted_at": now,
        "checked_at": now,
    }
    model.save(update_fields=["balance"])
    # The vectors older than this pool will never be fitted on again: they are dropped from the log,
    # so a busy shop's log keeps at most two pools of them.
    query_vectors_forget(model_version=model.version, keep=MAX_QUERIES)
    log.info(
        "balanced answers of model v%s: %s products on %s searches", model.version, len(order), len(queries)
    )
    return BalanceFit(len(queries), len(order))


def _gallery(model: ModelVersion) -> tuple[list[int], np.ndarray]:
    """Every point of the model's collection that searches can answer with (its product active): its
    product id and its (unit) vector."""
    store = vector_store()
    # A deactivated product's points stay in the store but no search returns them: balancing must not
    # give them a share of the shoppers' photos.
    ids = [
        image_id
        for image_id, payload in store.scroll_ids(model.collection)
        if payload.get("active", True) not in (False, 0)
    ]
    gallery = np.empty((len(ids), model.embedding_dim), dtype=np.float32)
    product_ids: list[int] = []
    for _image_id, vector, payload in store.vectors(model.collection, ids):
        gallery[len(product_ids)] = vector
        product_ids.append(int(payload["product_id"]))
    return product_ids, gallery[: len(product_ids)]


def _skip(model: ModelVersion, outcome: BalanceFit) -> BalanceFit:
    """Record why ``model`` is not balanced (no offsets), and when, with the searches logged by then."""
    model.balance = {
        "skipped": outcome.skipped,
        "queries": log_selectors.query_vector_count(model.version),
        "checked_at": timezone.now().isoformat(),
    }
    model.save(update_fields=["balance"])
    return outcome


def query_vectors_forget(*, model_version: int, keep: int) -> int:
    """Drop the query vectors of ``model_version``'s photo searches but the ``keep`` most recent (the
    log entries stay); how many were dropped."""
    logs = log_selectors.logs_with_vector(model_version)
    older = logs.order_by("-created_at").values_list("created_at", flat=True)[keep : keep + 1]
    cutoff = next(iter(older), None)
    if cutoff is None:
        return 0
    return logs.filter(created_at__lte=cutoff).update(query_vector=None)
