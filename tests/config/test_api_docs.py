"""The API docs pages (Swagger UI, ReDoc) load nothing from another origin: every script, style sheet
and icon is one of our own /static/ files (drf-spectacular-sidecar), and no script is inline, so the
pages work offline and under a same-origin Content-Security-Policy."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

PAGES = ("/api/v1/docs/", "/api/v1/redoc/")
SCHEMA_URL = "/api/v1/schema/"


class _Refs(HTMLParser):
    """Every URL the page makes the browser fetch, and whether any script is inline."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)
        self._in_script = tag == "script" and not dict(attrs).get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def _refs(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("page", PAGES)
def test_docs_pages_reference_only_our_own_static_files(client, page) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    refs = _refs(html)
    assert refs.urls, "the page loads nothing?"
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), "a URL of another origin"
    assert refs.inline_scripts == 0, "an inline script would need 'unsafe-inline' in a CSP"
    assets = [u for u in refs.urls if u.startswith("/static/")]
    others = [u for u in refs.urls if not u.startswith("/static/")]
    assert assets, refs.urls
    assert set(others) <= {SCHEMA_URL, f"{page}?script="}, others


@pytest.mark.django_db
def test_every_asset_and_the_settings_script_are_served(settings) -> None:
    settings.WHITENOISE_USE_FINDERS = True  # what collectstatic puts under STATIC_ROOT in a deployment
    client = Client()  # built after the setting, so WhiteNoise reads it
    fetched = 0
    for page in PAGES:
        for url in _refs(client.get(page).content.decode()).urls:
            response = client.get(url)
            assert response.status_code == 200, url
            body = b"".join(response.streaming_content) if response.streaming else response.content
            assert body, url
            fetched += 1
            if url.endswith("?script="):
                assert response["Content-Type"].startswith("application/javascript")
                assert SCHEMA_URL.encode() in body and b"https://" not in body
    assert fetched >= 6  # icon, css, two Swagger UI bundles, its settings script, ReDoc, the schema
