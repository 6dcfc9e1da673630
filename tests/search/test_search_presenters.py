"""The search answer is built by hand (search/api/presenters.py) and documented by the serializers
(search/api/serializers.py, the OpenAPI schema): both must say the same for every kind of answer."""

from __future__ import annotations

import dataclasses

import pytest
from django.test import RequestFactory

from catalog.models import Product
from search.api import serializers as s
from search.api.links import HitLinks
from search.api.presenters import present_hits, search_answer
from search.services import searching
from search.services.text_rerank import TextRerank

pytestmark = pytest.mark.django_db


def _query(**given) -> searching.SearchQuery:
    fields = {"image": None, "crop": None, "product_id": None, "image_id": None, "limit": 3,
              "categories": [], "min_price": None, "max_price": None, "in_stock": None, "sku": None,
              "text": None}  # fmt: skip
    return searching.SearchQuery(**{**fields, **given})


def _both(outcome: searching.SearchOutcome) -> tuple[dict, dict]:
    request = RequestFactory().post("/api/v1/search/", secure=True, HTTP_HOST="shop.example")
    documented = s.SearchOutput(outcome, context={"links": HitLinks(request)}).data
    return search_answer(outcome, HitLinks(request)), dict(documented)


def test_a_photo_answer_matches_its_schema(indexed_catalog, settings) -> None:
    settings.ALLOWED_HOSTS = ["shop.example"]
    products, photos = indexed_catalog
    # A price unknown and a shop page given: the nulls and links of a card go through as well.
    Product.objects.filter(pk=products["RED-1"].pk).update(price=None, link="https://shop.example/red")
    outcome = searching.search(_query(image=photos["GRN-1"]))
    built, documented = _both(outcome)
    assert len(built["results"]) == 3
    assert built == documented
    assert list(built) == list(documented)  # the schema's order of keys
    assert list(built["results"][0]["product"]) == list(documented["results"][0]["product"])
    assert built["results"][0]["product"]["url"] == f"https://shop.example/products/{products['GRN-1'].pk}/"
    red = next(r["product"] for r in built["results"] if r["product"]["sku"] == "RED-1")
    assert red["price"] is None and red["link"] == "https://shop.example/red"


def test_verdicts_words_and_more_like_this_match_their_schema(indexed_catalog, settings) -> None:
    settings.ALLOWED_HOSTS = ["shop.example"]
    products, photos = indexed_catalog
    photo = searching.search(_query(image=photos["BLU-1"]))
    labelled = dataclasses.replace(
        photo,
        hits=[
            dataclasses.replace(h, match=m)
            for h, m in zip(photo.hits, ("same", "similar", "similar"), strict=True)
        ],
        no_match=False,
        text_rerank=TextRerank(reranked=True, read=True, words=["ALPRO", "1,5%"], ms=12.5),
    )
    unread = dataclasses.replace(photo, no_match=True, text_rerank=TextRerank(read=False))
    more = searching.search(_query(product_id=products["RED-1"].pk))
    balanced = dataclasses.replace(photo, balanced=True)
    for outcome in (labelled, unread, more, balanced):
        built, documented = _both(outcome)
        assert built == documented
    assert _both(balanced)[0]["balanced"] is True and _both(labelled)[0]["balanced"] is False
    assert _both(labelled)[0]["words_read"] == ["ALPRO", "1,5%"]
    assert _both(labelled)[0]["results"][0]["match"] == "same"
    assert _both(unread)[0]["words_read"] is None and _both(unread)[0]["no_match"] is True
    assert _both(more)[0]["no_match"] is None


def test_pages_get_the_same_hits_as_the_api(indexed_catalog) -> None:
    _, photos = indexed_catalog
    outcome = searching.search(_query(image=photos["RED-1"]))
    request = RequestFactory().get("/")
    documented = s.HitOutput(outcome.hits, many=True, context={"links": HitLinks(request)}).data
    assert present_hits(outcome.hits, request) == [dict(h) for h in documented]
