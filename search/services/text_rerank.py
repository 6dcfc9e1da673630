"""A photo's visual answer re-ranked by the words on the pack.

Packs of one brand look alike (milk 1.5% and 3%, apple and orange juice of the same maker); the
words printed on them differ. When the visual answer is not clear-cut (the top product's lead over
the next one under the margin), the shopper's photo is read once (ml.ocr's query profile, within
``SEARCH_TEXT_BUDGET_MS``), and the top candidates (so many products) are ordered by

    visual score + weight * (text score / the best candidate's text score)

Margin, weight and candidates are chosen per kind of model (:func:`rerank_params`): the pretrained
model's ``SEARCH_TEXT_MARGIN`` / ``_WEIGHT`` / ``_CANDIDATES``, a trained model's ``..._TRAINED``.

where a product's text score is the text index's IDF-weighted match of the photo's words to the
product's text (search/services/text_index.py: title, brand, attributes, description and the words
read on its catalog images; the same terms and the same index as search by words). Products below
the candidates keep their place.

Skipped, leaving the visual order as it was: a clear-cut answer, no words read, no candidate with any
matching text, a reading past its budget or failing. The search never fails because of it: whatever
goes wrong is the reason it was skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from PIL import Image, ImageDraw, ImageFont

from ml import ocr
from ml.text_tokens import terms
from search.services.text_index import TEXT_COLLECTION
from search.vector_store import CollectionNotFound, Hit, SearchFilter, SparseVector, vector_store

log = logging.getLogger(__name__)

# Why the photo's words did not re-rank its answer (``TextRerank.skipped``).
DISABLED = "disabled"  # SEARCH_TEXT_RERANK off
CLEAR = "clear"  # the visual answer was clear-cut: nothing read
TIMEOUT = "timeout"  # the reading ran past its budget
FAILED = "failed"  # the engine could not run, or anything else went wrong
NO_WORDS = "no_words"  # nothing read on the photo
NO_TEXT = "no_candidate_text"  # no candidate's text matches any word read (or none has text)
# A line read with less confidence is left out (the engine's own cut is 0.5; stray strokes of a
# picture on the pack come out as short low-confidence "words").
MIN_CONFIDENCE = 0.6


@dataclass(frozen=True)
class RerankParams:
    """When a visual answer is read (its lead under ``margin``), how many products the words re-rank
    and how much they weigh."""

    margin: float
    weight: float
    candidates: int


def rerank_params(kind: str) -> RerankParams:
    """The re-ranking settings for a model of ``kind`` (ModelKind's values)."""
    if kind == "trained":
        return RerankParams(
            settings.SEARCH_TEXT_MARGIN_TRAINED,
            settings.SEARCH_TEXT_WEIGHT_TRAINED,
            max(2, settings.SEARCH_TEXT_CANDIDATES_TRAINED),
        )
    return RerankParams(
        settings.SEARCH_TEXT_MARGIN, settings.SEARCH_TEXT_WEIGHT, max(2, settings.SEARCH_TEXT_CANDIDATES)
    )


@dataclass
class TextRerank:
    """What the photo's words did to its answer."""

    reranked: bool = False  # the words changed the order of the results
    read: bool = False  # the photo was read (its words, possibly none, are in ``words``)
    words: list[str] = field(default_factory=list)
    skipped: str | None = None  # why not re-ranked (one of the reasons above); None when re-ranked
    ms: float = 0.0  # reading and scoring


def margin(hits: Sequence[Hit]) -> float:
    """The top product's lead over the next one (hits are one per product, best first)."""
    if len(hits) < 2:
        return float("inf")
    return float(hits[0].score - hits[1].score)


def combine(visual: Sequence[tuple[int, float]], text: dict[int, float], weight: float) -> list[int]:
    """Product ids of ``visual`` (product, visual score; best first) ordered by visual score plus
    ``weight`` times the text score relative to the best candidate's. A stable sort: ties keep the
    visual order. The benchmark's calibration replays this on recorded answers (bench/text.py)."""
    best = max(text.values(), default=0.0)
    if best <= 0:
        return [p for p, _ in visual]
    scored = [(score + weight * text.get(p, 0.0) / best, n, p) for n, (p, score) in enumerate(visual)]
    return [p for _, _, p in sorted(scored, key=lambda t: (-t[0], t[1]))]


def candidate_text_scores(
    words: Sequence[str], product_ids: Sequence[int], flt: SearchFilter
) -> dict[int, float]:
    """Each candidate's match of ``words`` in the text index (IDF-weighted); products with no match, or
    no text point, are absent."""
    weights = terms(" ".join(words))
    if not weights or not product_ids:
        return {}
    only = SearchFilter(
        categories=flt.categories,
        min_price=flt.min_price,
        max_price=flt.max_price,
        in_stock=flt.in_stock,
        active=flt.active,
        product_ids=list(product_ids),
    )
    try:
        hits = vector_store().search_sparse(
            TEXT_COLLECTION, SparseVector(list(weights), list(weights.values())), len(product_ids), only
        )
    except CollectionNotFound:  # no product has text yet
        return {}
    return {h.product_id: float(h.score) for h in hits}


def read_photo(picture: Image.Image, budget_s: float) -> list[str]:
    """The lines read on the shopper's photo (the query profile), confident ones only."""
    ocr.configure(query_threads=settings.OCR_QUERY_THREADS)
    return [
        w.text for w in ocr.read_query_words(picture, budget_s=budget_s) if w.confidence >= MIN_CONFIDENCE
    ]


def warm_up() -> None:
    """Build the query reader and read one made-up label with it, at process start: the first
    shopper's photo would otherwise wait about 1 s for the engine to load (past the reading's budget,
    so never re-ranked) and meet its first allocations. Nothing when re-ranking is off."""
    if not settings.SEARCH_TEXT_RERANK:
        return
    label = Image.new("RGB", (420, 110), "white")
    ImageDraw.Draw(label).text(
        (16, 30), "Lookalike 500 ml", fill="black", font=ImageFont.load_default(size=40)
    )
    read_photo(label, budget_s=30.0)


def rerank_by_text(
    hits: list[Hit], picture: Image.Image, flt: SearchFilter, params: RerankParams
) -> tuple[list[Hit], TextRerank]:
    """``hits`` (the visual answer, one per product, best first) re-ranked by the words on ``picture``
    when the answer is not clear-cut (``params``: :func:`rerank_params` of the answering model); never
    raises."""
    outcome = TextRerank()
    if not settings.SEARCH_TEXT_RERANK:
        outcome.skipped = DISABLED
        return hits, outcome
    if margin(hits) >= params.margin:
        outcome.skipped = CLEAR
        return hits, outcome
    started = time.perf_counter()
    k = params.candidates
    candidates = hits[:k]
    try:
        outcome.words = read_photo(picture, settings.SEARCH_TEXT_BUDGET_MS / 1000.0)
        outcome.read = True
        text = candidate_text_scores(outcome.words, [h.product_id for h in candidates], flt)
    except ocr.OcrTimeout:
        outcome.skipped = TIMEOUT
    except Exception:  # the engine missing, the index down, anything: the visual answer stands
        log.warning("reading the search photo's text failed; the visual answer stands", exc_info=True)
        outcome.skipped = FAILED
    else:
        if not outcome.words:
            outcome.skipped = NO_WORDS
        elif not text:
            outcome.skipped = NO_TEXT
        else:
            order = combine([(h.product_id, h.score) for h in candidates], text, params.weight)
            by_product = {h.product_id: h for h in candidates}
            reordered = [by_product[p] for p in order]
            outcome.reranked = reordered != candidates
            hits = reordered + hits[k:]
    outcome.ms = round((time.perf_counter() - started) * 1000, 2)
    return hits, outcome
