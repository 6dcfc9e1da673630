"""The storefront widget (lookalike.js) in a real browser, on a shop page, against a STAND-IN API.

The test starts two loopback servers on different ports, so two origins, as in production:
- the "shop": a product page with the script tag, a search block and "looks similar" blocks, and the
  product pages its result links lead to;
- `StandInApi`: NOT the platform. It serves the widget file and answers /api/v1/search/ and
  /api/v1/events/ from canned JSON shaped as the contract in docs/widget.md, with CORS for the shop
  origin, and records every request. It checks the widget's side of the contract; the platform's own
  answers are tested end to end against the real API elsewhere.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import SCREENSHOT_DIR
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.e2e

WIDGET = (
    Path(__file__).resolve().parents[2] / "search" / "static" / "lookalike-widget" / "v1" / "lookalike.js"
)
KEY = "pk_test_widget_123"
WAIT_S = 10
SEARCH_ID = "5b0c1b9e-6f3e-4a59-9d0e-3f4f3c0f7a11"
NO_MATCH_HEADING = "No exact match; similar items"
EVENTS_PREFLIGHT_DELAY_S = 0.5
BROKEN_MESSAGE = "The model is warming up; try again in a minute."


def _hit(api: str, shop: str, pid: int, title: str, match: str, price: float | None, **product: Any) -> dict:
    fields = {
        "id": pid,
        "sku": f"SKU-{pid}",
        "title": title,
        "category": "kitchen",
        "price": price,
        "currency": "EUR",
        "in_stock": True,
        "url": f"{api}/products/{pid}/",
        "link": f"{shop}/p/{pid}",
        "image_url": f"{api}/media/{pid}.png",
    }
    fields.update(product)
    return {
        "score": 0.9,
        "match": match,
        "image_id": f"00000000-0000-0000-0000-{pid:012d}",
        "product": fields,
    }


class StandInApi:
    """A stand-in for the platform's API (see the module docstring): canned answers, recorded requests."""

    def __init__(self, shop_origin: Callable[[], str]) -> None:
        self.shop_origin = shop_origin
        self.requests: list[dict[str, Any]] = []
        self.no_match = False
        self.server = _start(self._handler())
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thumbnail = image_bytes(color=(30, 120, 200), size=(40, 40), fmt="PNG")

    def answer(self, request: dict[str, Any]) -> tuple[int, dict]:
        api, shop = self.origin, self.shop_origin()
        if request["json"] is not None and "q" in request["json"]:
            # Words alone: the platform gives no match verdict (no_match and match are null).
            return 200, {
                "search_id": SEARCH_ID,
                "model_version": 3,
                "no_match": None,
                "timings_ms": {"total": 5.0},
                "results": [
                    {**_hit(api, shop, 31, f"Words: {request['json']['q']}", "same", 4.0), "match": None}
                ],
            }
        if request["json"] is not None:
            sku = request["json"].get("sku")
            if sku == "BROKEN":
                return 503, {"error": {"code": "unavailable", "message": BROKEN_MESSAGE}}
            # A "more like this" answer as the platform once sent it: a verdict, and a "same" first hit
            # (the platform now sends neither for a query by sku); the similar block must show neither.
            return 200, {
                "search_id": SEARCH_ID,
                "model_version": 3,
                "no_match": True,
                "timings_ms": {"total": 12.0},
                "results": [
                    _hit(api, shop, 12, f"Red mug ({sku})", "same", 15.0),
                    # A title that looks like markup must arrive as text; a link that is not http(s)
                    # must never become an href (the platform URL is used instead).
                    _hit(
                        api, shop, 13, "<b>Blue</b> vase & co", "similar", 1234.5, link="javascript:alert(1)"
                    ),
                    _hit(api, shop, 14, "Green lamp", "similar", None, link=None, image_url=None),
                ],
            }
        return 200, {
            "search_id": SEARCH_ID,
            "model_version": 3,
            "no_match": self.no_match,
            "timings_ms": {"total": 20.0},
            "results": [
                _hit(api, shop, 21, "Yellow teapot", "similar" if self.no_match else "same", 9.5),
                _hit(api, shop, 22, "Orange jug", "similar", 11.0),
            ],
        }

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = [r for r in list(self.requests) if predicate(r)]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"the stand-in API never received {what}; it got {self.summary()}")

    def searches(self) -> list[dict[str, Any]]:
        return [r for r in list(self.requests) if r["method"] == "POST" and r["path"] == "/api/v1/search/"]

    def photo_searches(self) -> list[dict[str, Any]]:
        return [r for r in self.searches() if "image" in r["fields"]]

    def summary(self) -> list[str]:
        return [f"{r['method']} {r['path']} {r['json'] or sorted(r['fields'])}" for r in list(self.requests)]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                if self.path == "/widget/v1/lookalike.js":
                    self.reply(200, WIDGET.read_bytes(), "text/javascript; charset=utf-8")
                elif self.path.startswith("/media/"):
                    self.reply(200, api.thumbnail, "image/png")
                else:
                    self.reply(404, b"not here", "text/plain")

            def do_OPTIONS(self) -> None:
                api.requests.append(self.record(b""))
                if self.path == "/api/v1/events/":
                    # Slower than the shop's next page loads here: a click report without keepalive
                    # is cancelled by the navigation before its POST is sent, and the test sees it.
                    time.sleep(EVENTS_PREFLIGHT_DELAY_S)
                self.send_response(204)
                self.cors()
                self.send_header("Access-Control-Allow-Methods", "POST")
                self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
                self.send_header("Access-Control-Max-Age", "600")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = self.record(body)
                api.requests.append(request)
                if self.path == "/api/v1/events/":
                    self.reply(202, b"{}", "application/json")
                    return
                status, answer = api.answer(request)
                self.reply(status, json.dumps(answer).encode(), "application/json")

            def cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", api.shop_origin())
                self.send_header("Vary", "Origin")

            def reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.cors()
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def record(self, body: bytes) -> dict[str, Any]:
                ctype = self.headers.get("Content-Type") or ""
                fields: dict[str, list[Any]] = {}
                if ctype.startswith("multipart/form-data"):
                    message = BytesParser(policy=policy.HTTP).parsebytes(
                        f"Content-Type: {ctype}\r\n\r\n".encode() + body
                    )
                    for part in message.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        data = part.get_payload(decode=True)
                        if part.get_filename() is None:
                            fields.setdefault(name, []).append(data.decode())
                        else:
                            fields.setdefault(name, []).append(
                                {"type": part.get_content_type(), "data": data}
                            )
                return {
                    "at": time.monotonic(),
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "json": json.loads(body) if ctype.startswith("application/json") else None,
                    "fields": fields,
                }

        return Handler


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def _start(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# The shop's own look: the widget must leave these computed styles exactly as they were.
SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title>
<style>
  body {{ font-family: Georgia, serif; color: #333; margin: 0 2rem; }}
  p {{ color: rgb(10, 20, 30); margin: 7px 3px; line-height: 1.7; }}
  a {{ color: rgb(200, 0, 0); text-decoration: underline dotted; }}
</style>
<script>
  // Counts the widget's warnings, and snapshots the shop's styles before the deferred widget runs.
  window.__warns = [];
  const warn = console.warn;
  console.warn = (...args) => {{ window.__warns.push(args.join(" ")); warn.apply(console, args); }};
  window.__styles = () => Object.fromEntries(["shop-p", "shop-a"].map((id) => {{
    const cs = getComputedStyle(document.getElementById(id));
    return [id, Object.fromEntries([...cs].map((name) => [name, cs.getPropertyValue(name)]))];
  }}));
</script>
</head><body>
<p id="shop-p">Welcome to the shop. <a id="shop-a" href="/about">About us</a></p>
<div id="search" data-lookalike-search data-limit="5" data-category="kitchen, garden" data-in-stock="true"></div>
<div id="similar" data-lookalike-similar data-sku="RED-1" data-limit="8"></div>
<div id="broken" data-lookalike-similar data-sku="BROKEN"></div>
<div id="broken-too" data-lookalike-similar data-sku="BROKEN"></div>
<div style="height: 4000px"></div>
<div id="late" data-lookalike-similar data-sku="LATE"></div>
<input id="shop-q" aria-label="The shop's own search field">
<script>window.__before = window.__styles();</script>
<script src="{api}/widget/v1/lookalike.js" data-key="{key}" defer></script>
</body></html>
"""


class Shop:
    def __init__(self, api: Callable[[], str]) -> None:
        self.served: dict[str, float] = {}  # path -> when it was asked for (time.monotonic)
        shop = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                shop.served[self.path] = time.monotonic()
                if self.path.startswith("/p/"):
                    body = f"<!doctype html><title>Product {self.path[3:]}</title><h1>Product</h1>".encode()
                else:
                    body = SHOP_PAGE.format(api=api(), key=KEY).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                # no-store keeps the page out of the back/forward cache. A cached page's fetches outlive
                # it with or without keepalive (seen here: the report arrived either way), so keepalive
                # would go untested.
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _start(Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.origin + "/"


@pytest.fixture
def servers() -> Iterator[tuple[Shop, StandInApi]]:
    holder: dict[str, Any] = {}
    api = StandInApi(lambda: holder["shop"].origin)
    holder["shop"] = shop = Shop(lambda: api.origin)
    assert shop.origin != api.origin
    try:
        yield shop, api
    finally:
        for server in (shop.server, api.server):
            server.shutdown()
            server.server_close()


def _wait(driver: Any, condition: Callable[[Any], Any], message: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, message)


def _cards(driver: Any, block: str) -> list[dict[str, Any]]:
    """What the shopper sees in a block's results, read in one round trip."""
    return driver.execute_script(
        """
        const links = document.querySelectorAll(arguments[0] + " [data-lookalike-results] [role=list] .lkw-card");
        return [...links].map((a) => {
          const img = a.querySelector("img");
          return {href: a.getAttribute("href"), tag: a.tagName, text: a.innerText,
                  title: a.querySelector(".lkw-title").textContent,
                  price: (a.querySelector(".lkw-price") || {}).textContent || null,
                  alt: img && img.alt, lazy: img && img.loading, width: img && img.getAttribute("width"),
                  height: img && img.getAttribute("height"), loaded: img && img.complete && img.naturalWidth > 0,
                  elements: a.querySelectorAll("b").length, match: a.parentElement.dataset.match};
        });
        """,
        block,
    )


# Pastes or drops a file the way the browser does, with a DataTransfer holding it (WebDriver has no
# clipboard or file drag of its own).
SEND_FILE_JS = """
const [how, selector, b64, name] = arguments;
const data = new DataTransfer();
data.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, {type: "image/png"}));
const target = selector ? document.querySelector(selector) : document.activeElement;
const events = how === "paste"
  ? [new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true})]
  : ["dragenter", "dragover", "drop"].map((t) => new DragEvent(t, {dataTransfer: data, bubbles: true, cancelable: true}));
for (const event of events) target.dispatchEvent(event);
"""


def _euros(driver: Any, amount: float, currency: str = "EUR") -> str:
    return driver.execute_script(
        "return new Intl.NumberFormat(undefined, {style: 'currency', currency: arguments[1]}).format(arguments[0])",
        amount,
        currency,
    )


def test_similar_blocks_errors_lazy_loading_styles_and_keyboard(browser: Any, servers: Any) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shop, api = servers
    browser.get(shop.url)
    _wait(browser, lambda d: len(_cards(d, "#similar")) == 3, "the similar block never showed 3 results")
    assert browser.execute_script("return window.Lookalike.version").startswith("1.")

    cards = _cards(browser, "#similar")
    assert [c["href"] for c in cards] == [
        f"{shop.origin}/p/12",  # product.link: the shop's own page
        f"{api.origin}/products/13/",  # link was javascript:, so the platform's product.url
        f"{api.origin}/products/14/",  # link was null
    ]
    assert [c["title"] for c in cards] == ["Red mug (RED-1)", "<b>Blue</b> vase & co", "Green lamp"]
    assert browser.find_element(By.CSS_SELECTOR, "#similar h2").text == "Looks similar"
    # "Looks similar" is about similar products, never a match verdict, even when an answer carries one.
    similar_text = browser.find_element(By.ID, "similar").text
    assert NO_MATCH_HEADING not in similar_text and "Same item" not in similar_text
    assert [c["match"] for c in cards] == ["similar"] * 3
    assert cards[1]["elements"] == 0, "a title was parsed as markup"
    assert [c["alt"] for c in cards[:2]] == ["Red mug (RED-1)", "<b>Blue</b> vase & co"]
    assert cards[2]["alt"] is None, "image_url null must not render a broken <img>"
    assert all(c["lazy"] == "lazy" and c["width"] and c["height"] for c in cards[:2])
    assert [c["price"] for c in cards] == [_euros(browser, 15.0), _euros(browser, 1234.5), None]
    assert "15.00" in cards[0]["price"] and "1,234.50" in cards[1]["price"], cards
    # Cross-origin thumbnails from the API's media load.
    _wait(browser, lambda d: all(c["loaded"] for c in _cards(d, "#similar")[:2]), "thumbnails did not load")

    sku_search = api.wait_for(lambda r: r["json"] == {"sku": "RED-1", "limit": 8}, "the RED-1 sku search")
    assert sku_search["headers"]["authorization"] == f"Bearer {KEY}"
    assert sku_search["headers"]["origin"] == shop.origin
    assert "cookie" not in sku_search["headers"]
    preflight = api.wait_for(lambda r: r["method"] == "OPTIONS", "a CORS preflight")
    assert "authorization" in preflight["headers"]["access-control-request-headers"]

    # An API error shows its message inside the failing blocks only, and is warned about exactly once.
    for block_id in ("broken", "broken-too"):
        broken = browser.find_element(By.ID, block_id)
        _wait(
            browser, lambda d, b=broken: BROKEN_MESSAGE in b.text, f"#{block_id} did not show the 503 message"
        )
        assert broken.get_attribute("data-lookalike-state") == "error"
        assert not _cards(browser, f"#{block_id}")
    warns = browser.execute_script("return window.__warns")
    assert len(warns) == 1 and "503" in warns[0], warns

    # The block below the fold searches only when it is scrolled near the screen.
    assert not [r for r in api.searches() if (r["json"] or {}).get("sku") == "LATE"]
    browser.execute_script("document.getElementById('late').scrollIntoView()")
    _wait(browser, lambda d: len(_cards(d, "#late")) == 3, "the below-the-fold block never loaded")
    browser.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "widget_similar.png"))

    # Nothing the widget injected changed how the shop's own paragraph and link look.
    before = browser.execute_script("return window.__before")
    after = browser.execute_script("return window.__styles()")
    for element in before:
        changed = {
            k: (v, after[element].get(k)) for k, v in before[element].items() if after[element].get(k) != v
        }
        assert not changed, f"the widget changed the shop's #{element}: {changed}"
    styles = browser.execute_script(
        "return [...document.querySelectorAll('style')].map((s) => s.hasAttribute('data-lookalike-style'))"
    )
    assert styles.count(True) == 1, styles

    # Keyboard: from the top of the page, Tab reaches the word box, its button, then the photo picker,
    # right after the shop's link.
    browser.execute_script("document.activeElement.blur(); window.focus()")
    reached = []
    for _ in range(6):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        reached.append(
            browser.execute_script("return document.activeElement.id || document.activeElement.type")
        )
        if reached[-1] == "file":
            break
    assert reached[-4:] == ["shop-a", "search", "submit", "file"], reached
    label = browser.execute_script("return document.activeElement.labels[0].textContent")
    assert label == "Search by photo"
    focused_accept = browser.execute_script("return document.activeElement.accept")
    assert focused_accept == "image/*"

    # Enter on a result follows it and reports the click with the result's position.
    browser.execute_script("document.querySelectorAll('#similar [data-lookalike-results] a')[1].focus()")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    _wait(
        browser, lambda d: d.current_url == f"{api.origin}/products/13/", "Enter on a result did not navigate"
    )
    event = api.wait_for(
        lambda r: r["path"] == "/api/v1/events/" and r["method"] == "POST", "the click event"
    )
    assert event["json"] == {"search_id": SEARCH_ID, "product_id": 13, "position": 2, "type": "click"}


def test_photo_search_crop_no_match_and_click_report(browser: Any, servers: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shop, api = servers
    browser.get(shop.url)
    # A 3000x1500 photo, as phones take them: the widget sends a 1600 px copy instead.
    big = tmp_path / "big.png"
    big.write_bytes(image_bytes(color=(240, 200, 20), size=(3000, 1500), fmt="PNG", pattern=4))
    browser.find_element(By.CSS_SELECTOR, "#search input[type=file]").send_keys(str(big))
    _wait(browser, lambda d: len(_cards(d, "#search")) == 2, "the photo search showed no results")

    first = api.photo_searches()[-1]
    assert first["headers"]["authorization"] == f"Bearer {KEY}"
    assert first["headers"]["content-type"].startswith("multipart/form-data")
    fields = first["fields"]
    assert fields["limit"] == ["5"] and fields["in_stock"] == ["true"]
    assert fields["category"] == ["kitchen", "garden"]
    assert "crop" not in fields
    upload = fields["image"][0]
    assert upload["type"] == "image/jpeg"
    with Image.open(BytesIO(upload["data"])) as sent:
        assert sent.size == (1600, 800)

    cards = _cards(browser, "#search")
    assert [c["match"] for c in cards] == ["same", "similar"]
    assert "Same item" in cards[0]["text"]
    assert NO_MATCH_HEADING not in browser.find_element(By.CSS_SELECTOR, "#search").text
    status = browser.find_element(By.CSS_SELECTOR, "#search [aria-live=polite]")
    assert status.text == "2 products found."

    # Keyboard crop: the first arrow puts a box on the middle half, and one search follows.
    stage = browser.find_element(By.CSS_SELECTOR, "#search .lkw-stage")
    stage.send_keys(Keys.ARROW_RIGHT)
    cropped = api.wait_for(lambda r: r["fields"].get("crop"), "a search with a crop")
    assert cropped["fields"]["crop"] == ["400,200,800,400"]  # in the 1600x800 copy's pixels
    # Escape clears the crop: the whole photo is searched again.
    count = len(api.photo_searches())
    stage.send_keys(Keys.ESCAPE)
    _wait(browser, lambda d: len(api.photo_searches()) > count, "Escape did not search the whole photo")
    assert "crop" not in api.photo_searches()[-1]["fields"]

    # Pointer crop: drag over the top-left quarter of the preview.
    preview = browser.find_element(By.CSS_SELECTOR, "#search .lkw-stage img")
    width, height = preview.size["width"], preview.size["height"]
    count = len(api.photo_searches())
    ActionChains(browser).move_to_element_with_offset(
        preview, -width // 2 + 1, -height // 2 + 1
    ).click_and_hold().move_by_offset(width // 2, height // 2).release().perform()
    _wait(browser, lambda d: len(api.photo_searches()) > count, "dragging a crop box did not search")
    x, y, w, h = map(int, api.photo_searches()[-1]["fields"]["crop"][0].split(","))
    assert x <= 20 and y <= 20 and 700 <= w <= 900 and 300 <= h <= 500, (x, y, w, h)
    # A click without a drag changes nothing, so it sends nothing.
    count = len(api.photo_searches())
    ActionChains(browser).click(preview).perform()
    time.sleep(0.3)
    assert len(api.photo_searches()) == count, "a plain click on the photo searched again"

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "widget_search.png"))

    # Paste: not while the shop's own field has focus; elsewhere it goes to the page's only search block.
    pasted = image_bytes(color=(10, 160, 90), size=(50, 40), fmt="PNG", pattern=7)
    count = len(api.photo_searches())
    browser.execute_script("document.getElementById('shop-q').focus()")
    browser.execute_script(SEND_FILE_JS, "paste", None, base64.b64encode(pasted).decode(), "clip.png")
    time.sleep(0.3)
    assert len(api.photo_searches()) == count, "a paste into the shop's own field started a search"
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")
    browser.execute_script(SEND_FILE_JS, "paste", None, base64.b64encode(pasted).decode(), "clip.png")
    _wait(browser, lambda d: len(api.photo_searches()) > count, "pasting an image did not search")
    assert api.photo_searches()[-1]["fields"]["image"][0]["data"] == pasted

    # Drop a file onto the block.
    dropped = image_bytes(color=(90, 10, 160), size=(50, 40), fmt="PNG", pattern=8)
    count = len(api.photo_searches())
    root = "#search [data-lookalike-root]"
    browser.execute_script(SEND_FILE_JS, "drop", root, base64.b64encode(dropped).decode(), "drop.png")
    _wait(browser, lambda d: len(api.photo_searches()) > count, "dropping an image did not search")
    assert api.photo_searches()[-1]["fields"]["image"][0]["data"] == dropped

    # A small photo is sent as it is, and a no_match answer gets its heading.
    api.no_match = True
    small = tmp_path / "small.jpg"
    small.write_bytes(image_bytes(size=(64, 48)))
    browser.find_element(By.CSS_SELECTOR, "#search input[type=file]").send_keys(str(small))
    _wait(
        browser,
        lambda d: (
            NO_MATCH_HEADING in d.find_element(By.CSS_SELECTOR, "#search [data-lookalike-results]").text
        ),
        "no_match: true did not show its heading",
    )
    assert api.photo_searches()[-1]["fields"]["image"][0]["data"] == small.read_bytes()
    assert [c["match"] for c in _cards(browser, "#search")] == ["similar", "similar"]

    # Following a result lands on the shop's page at once, and reports the click: the report's preflight
    # takes EVENTS_PREFLIGHT_DELAY_S, so it arrives after the navigation, thanks to keepalive.
    link = browser.find_element(By.CSS_SELECTOR, "#search [data-lookalike-results] a[href]")
    assert link.get_attribute("href") == f"{shop.origin}/p/21"
    link.click()
    _wait(browser, lambda d: d.current_url == f"{shop.origin}/p/21", "the result link did not navigate")
    event = api.wait_for(
        lambda r: r["path"] == "/api/v1/events/" and r["method"] == "POST", "the click event"
    )
    assert event["json"] == {"search_id": SEARCH_ID, "product_id": 21, "position": 1, "type": "click"}
    assert event["headers"]["authorization"] == f"Bearer {KEY}"
    assert shop.served["/p/21"] < event["at"], "the navigation waited for the click report"


def test_words_alone_and_with_a_photo(browser: Any, servers: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shop, api = servers
    browser.get(shop.url)
    box = _wait(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#search input[type=search]"), "no word box"
    )[0]
    assert box.get_attribute("aria-label") == "Search products by words"
    box.send_keys("yellow tea", Keys.ENTER)
    _wait(browser, lambda d: len(_cards(d, "#search")) == 1, "a search by words showed no results")
    sent = api.searches()[-1]
    assert sent["json"] == {
        "q": "yellow tea",
        "limit": 5,
        "category": ["kitchen", "garden"],
        "in_stock": True,
    }
    cards = _cards(browser, "#search")
    assert cards[0]["title"] == "Words: yellow tea" and cards[0]["match"] == "similar"
    assert NO_MATCH_HEADING not in browser.find_element(By.CSS_SELECTOR, "#search").text
    assert browser.find_element(By.CSS_SELECTOR, "#search [aria-live=polite]").text == "1 product found."
    # Enter again on the same words sends nothing; the page itself never navigates (the form is ours).
    count = len(api.searches())
    box.send_keys(Keys.ENTER)
    time.sleep(0.3)
    assert len(api.searches()) == count and browser.current_url == shop.url

    # A photo chosen while words are in the box: one photo search carrying the words.
    photo = tmp_path / "photo.png"
    photo.write_bytes(image_bytes(color=(240, 200, 20), size=(60, 40), fmt="PNG", pattern=3))
    browser.find_element(By.CSS_SELECTOR, "#search input[type=file]").send_keys(str(photo))
    _wait(browser, lambda d: len(_cards(d, "#search")) == 2, "the photo search showed no results")
    assert api.photo_searches()[-1]["fields"]["q"] == ["yellow tea"]
    # Clearing the words searches the photo alone.
    count = len(api.photo_searches())
    browser.execute_script(
        "const q = document.querySelector('#search input[type=search]'); q.value = '';"
        " q.dispatchEvent(new Event('search'));"
    )
    _wait(browser, lambda d: len(api.photo_searches()) > count, "clearing the words did not search again")
    assert "q" not in api.photo_searches()[-1]["fields"]
