"""The shopper-facing pages: server-rendered, with a little plain JavaScript calling the search API."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors as catalog_selectors
from search.api.presenters import present_hits
from search.errors import SearchError
from search.services import searching


def search_page(request: HttpRequest) -> HttpResponse:
    return render(request, "search/index.html", {"categories": catalog_selectors.categories()})


def product_page(request: HttpRequest, product_id: int) -> HttpResponse:
    product = catalog_selectors.product_get(product_id=product_id)
    if product is None or not product.active:
        raise Http404("No such product.")
    similar, problem = [], None
    try:
        outcome = searching.search(searching.SearchQuery(product_id=product.pk, limit=12))
        similar = present_hits(outcome.hits, request)
    except SearchError as exc:
        problem = exc.message
    return render(
        request,
        "search/product.html",
        {"product": product, "images": list(product.images.all()), "similar": similar, "problem": problem},
    )
