"""The widget's script as the platform serves it at /widget/v1/lookalike.js: type, caching, gzip, CORP."""

from __future__ import annotations

import gzip

import pytest
from django.test import Client

from search.web.widget import WIDGET_FILE

URL = "/widget/v1/lookalike.js"


@pytest.fixture
def client() -> Client:
    return Client()


def test_served_with_cache_and_cross_origin_headers(client: Client) -> None:
    response = client.get(URL, HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.content == WIDGET_FILE.read_bytes()
    assert "Content-Encoding" not in response
    assert response["Cache-Control"] == "public, max-age=300, stale-while-revalidate=86400"
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "accept-encoding" in response["Vary"].lower()
    assert response["ETag"].startswith('"') and response["ETag"].endswith('"')


def test_gzip_when_accepted_within_the_budget(client: Client) -> None:
    plain = client.get(URL)
    zipped = client.get(URL, HTTP_ACCEPT_ENCODING="br, gzip;q=0.8")
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert len(zipped.content) <= 15 * 1024  # the budget, as sent
    assert zipped["ETag"] != plain["ETag"]  # two representations, two validators
    refused = client.get(URL, HTTP_ACCEPT_ENCODING="gzip;q=0, identity")
    assert "Content-Encoding" not in refused


def test_revalidation_answers_304(client: Client) -> None:
    first = client.get(URL, HTTP_ACCEPT_ENCODING="gzip")
    again = client.get(URL, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=f'"other", {first["ETag"]}')
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"] and again["Cache-Control"] == first["Cache-Control"]
    # The plain representation's validator does not match the gzipped one.
    assert client.get(URL, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_only_get_and_head(client: Client) -> None:
    assert client.head(URL).status_code == 200
    assert client.post(URL).status_code == 405
