"""The storefront widget end to end: a shop's page on one loopback origin, the REAL platform (pytest-django's
live server: the API, the widget file, media, CORS, API keys, the search log) on another.

tests/e2e/test_widget_contract.py checks the widget's side against a stand-in API; this test checks that
the platform keeps that contract: a publishable key bound to the shop's origin, products whose `link`
points at the shop, results that lead there, and the click recorded in the search log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WAIT_S = 15

SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head><body>
<h1>Red mug</h1>
<div id="search" data-lookalike-search data-limit="3"></div>
<div id="similar" data-lookalike-similar data-sku="RED-1" data-limit="8"></div>
<script src="{api}/widget/v1/lookalike.js" data-key="{key}" defer></script>
</body></html>
"""


class ShopServer:
    """The shop: its page with the widget's markup, and its product pages (/p/<sku>)."""

    def __init__(self) -> None:
        self.page = ""
        self.served: list[str] = []
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                shop.served.append(self.path)
                if self.path.startswith("/p/"):
                    body = f"<!doctype html><title>{self.path[3:]}</title><h1>Shop product</h1>".encode()
                else:
                    body = shop.page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def shop() -> Iterator[ShopServer]:
    server = ShopServer()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def _wait(driver: Any, condition: Any, message: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, message)


CARDS_JS = """
return [...document.querySelectorAll(arguments[0] + ' [data-lookalike-results] li')].map((li) => {
  const a = li.querySelector('a[href]'), img = li.querySelector('img');
  return {href: a && a.href, alt: img && img.alt, loaded: !!img && img.complete && img.naturalWidth > 0,
          text: li.textContent};
});
"""


def test_widget_on_another_origin_against_the_platform(
    browser: Any, live_server: Any, e2e_catalog: Any, shop: ShopServer, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from apikeys import services as key_services
    from catalog import services
    from search.models import QueryKind, SearchClick, SearchLog

    products, photos = e2e_catalog
    for sku, product in products.items():
        services.product_update(product=product, link=f"{shop.origin}/p/{sku}")
    issued = key_services.api_key_create(name="the shop", kind="publishable", origins=[shop.origin])
    api = live_server.url
    assert shop.origin != api  # two origins: every API call is cross-origin, with CORS
    shop.page = SHOP_PAGE.format(api=api, key=issued.secret)

    browser.get(shop.origin + "/")
    # The "looks similar" block: the other two products, linking to the shop's own product pages.
    _wait(
        browser, lambda d: len(d.execute_script(CARDS_JS, "#similar")) == 2, "the similar block stayed empty"
    )
    similar = browser.execute_script(CARDS_JS, "#similar")
    assert {c["href"] for c in similar} == {f"{shop.origin}/p/GRN-1", f"{shop.origin}/p/BLU-1"}
    assert {c["alt"] for c in similar} == {"Green lamp", "Blue vase"}
    _wait(
        browser,
        lambda d: all(c["loaded"] for c in d.execute_script(CARDS_JS, "#similar")),
        "a photo did not load",
    )
    assert browser.find_element(By.ID, "similar").get_attribute("data-lookalike-state") == "ready"
    sku_search = SearchLog.objects.get(query_kind=QueryKind.SKU)
    assert sku_search.api_key_id == issued.key.pk and sku_search.query_product_id == products["RED-1"].pk

    # A photo chosen in the search block's file input.
    photo = tmp_path / "green-lamp.jpg"
    photo.write_bytes(photos["GRN-1"])
    browser.find_element(By.CSS_SELECTOR, "#search input[type=file]").send_keys(str(photo))
    _wait(
        browser,
        lambda d: len(d.execute_script(CARDS_JS, "#search")) == 3,
        "the photo search showed no results",
    )
    found = browser.execute_script(CARDS_JS, "#search")
    assert found[0]["href"] == f"{shop.origin}/p/GRN-1" and "Green lamp" in found[0]["text"]
    status = browser.find_element(By.CSS_SELECTOR, "#search [aria-live=polite]").text
    assert status == "3 products found."
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "widget_platform.png"))

    # Following the first result lands on the shop's page and the platform records the click.
    photo_search = SearchLog.objects.get(query_kind=QueryKind.PHOTO)
    browser.find_element(By.CSS_SELECTOR, "#search [data-lookalike-results] a[href]").click()
    _wait(browser, lambda d: d.current_url == f"{shop.origin}/p/GRN-1", "the result did not lead to the shop")
    deadline = time.monotonic() + WAIT_S
    while not SearchClick.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    click = SearchClick.objects.get()
    assert (click.search_id, click.position, click.product_id) == (photo_search.pk, 1, products["GRN-1"].pk)
    assert photo_search.api_key_id == issued.key.pk and photo_search.top_product_id == products["GRN-1"].pk

    # Words typed in the search block find the product by its title, through the same key and origin.
    from selenium.webdriver.common.keys import Keys

    browser.get(shop.origin + "/")
    box = _wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#search input[type=search]"), "no word box"
    )
    box[0].send_keys("blue vase", Keys.ENTER)
    _wait(browser, lambda d: d.execute_script(CARDS_JS, "#search"), "the search by words showed no results")
    assert browser.execute_script(CARDS_JS, "#search")[0]["href"] == f"{shop.origin}/p/BLU-1"
    text_search = SearchLog.objects.get(query_kind=QueryKind.TEXT)
    assert text_search.api_key_id == issued.key.pk and text_search.top_product_id == products["BLU-1"].pk
