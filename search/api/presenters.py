"""The search answer as JSON-ready dicts, built directly.

``serializers.SearchOutput`` and its nested serializers document the answer (the OpenAPI schema is
made from them); these functions build the same dicts without DRF's machinery, which deep-copies
every nested serializer's fields on each request: about 0.6 ms of a 15 ms photo search here
(docs/benchmarks.md, "API photo search over HTTP"). tests/search/test_search_presenters.py holds
the two to the same output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search.api.links import HitLinks

if TYPE_CHECKING:
    from django.http import HttpRequest

    from search.services.searching import SearchHit, SearchOutcome

# The stages the answer reports, in the order the schema lists them (serializers.TimingsOutput).
TIMING_STAGES = ("decode", "embed", "search", "read_text", "catalog", "total")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def product_dict(card: dict[str, Any], links: HitLinks) -> dict[str, Any]:
    return {
        "id": int(card["product_id"]),
        "sku": str(card["sku"]),
        "title": str(card["title"]),
        "category": str(card["category"]),
        "price": _float(card["price"]),
        "currency": str(card["currency"]),
        "in_stock": _bool(card["in_stock"]),
        "link": card["link"] or None,
        "url": links.product(card["product_id"]),
        "image_url": links.image(card["file"]),
    }


def hit_dict(hit: SearchHit, links: HitLinks) -> dict[str, Any]:
    return {
        "score": round(hit.score, 5),
        "match": hit.match,
        "image_id": str(hit.image_id),
        "product": product_dict(hit.card, links),
    }


def search_answer(outcome: SearchOutcome, links: HitLinks) -> dict[str, Any]:
    """What POST /api/v1/search/ answers (the schema: serializers.SearchOutput)."""
    rerank = outcome.text_rerank
    return {
        "search_id": str(outcome.search_id),
        "model_version": int(outcome.model_version),
        "model_kind": outcome.model_kind,
        "no_match": _bool(outcome.no_match),
        "reranked_by_text": bool(outcome.reranked_by_text),
        "balanced": bool(outcome.balanced),
        "words_read": list(rerank.words) if rerank is not None and rerank.read else None,
        "timings_ms": {stage: float(outcome.timings_ms[stage]) for stage in TIMING_STAGES},
        "results": [hit_dict(hit, links) for hit in outcome.hits],
    }


def present_hits(hits: list[SearchHit], request: HttpRequest) -> list[dict[str, Any]]:
    """Hits as the API shows them (the pages render the same dicts)."""
    links = HitLinks(request)
    return [hit_dict(hit, links) for hit in hits]
