"""The search page in a real browser: upload a photo, see its product first, crop, and browse a product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Searches take tens of milliseconds (the model was loaded while indexing); the margin is for a loaded CI box.
WAIT_S = 15


def _wait(driver: Any, condition: Any, message: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page replaces every card when results arrive, so a card found a moment ago may be gone.
    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(condition, message)


def _cards(driver: Any, css: str = "#results .card") -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def test_photo_search_crop_and_product_page(
    browser: Any, live_server: Any, e2e_catalog: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    products, photos = e2e_catalog
    photo = tmp_path / "green-lamp.jpg"
    photo.write_bytes(photos["GRN-1"])

    browser.get(f"{live_server.url}/")
    assert browser.title == "Lookalike"
    # Before a photo is chosen only the hint shows, not an empty preview stage.
    assert not browser.find_element(By.ID, "stage").is_displayed()
    assert browser.find_element(By.ID, "drop-hint").is_displayed()
    # The input is hidden behind its label; Chromium's driver still accepts a file path on it.
    browser.find_element(By.ID, "file").send_keys(str(photo))
    _wait(browser, lambda d: len(_cards(d)) == 3, "the result grid never showed the 3 products")
    cards = _cards(browser)
    assert [c.get_attribute("data-sku") for c in cards][0] == "GRN-1"
    assert "score 1.000" in cards[0].text  # the very photo that was indexed
    status = browser.find_element(By.ID, "status")
    assert "3 products" in status.text and "model v" in status.text, status.text
    assert "error" not in (status.get_attribute("class") or "")
    # Result thumbnails are served from MEDIA_ROOT: a broken image would have naturalWidth 0.
    _wait(
        browser,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#results .card img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        ),
        "a result thumbnail did not load",
    )
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "search_page.png"))

    # Drag a crop box over the photo's top-left quarter: the page searches again with `crop`.
    preview = browser.find_element(By.ID, "preview")
    width, height = preview.size["width"], preview.size["height"]
    assert width >= 64 and height >= 64, preview.size
    # Offsets are from the element's centre (W3C actions): start near the top-left corner.
    ActionChains(browser).move_to_element_with_offset(
        preview, -width // 2 + 4, -height // 2 + 4
    ).click_and_hold().move_by_offset(width // 2, height // 2).release().perform()
    box = browser.find_element(By.ID, "box")
    assert box.is_displayed() and box.size["width"] > 40, box.size
    # A part of the photo no longer matches the whole indexed photo exactly.
    _wait(
        browser,
        lambda d: len(_cards(d)) == 3 and "score 1.000" not in _cards(d)[0].text,
        "results did not update after cropping",
    )
    assert "3 products" in status.text, status.text
    browser.save_screenshot(str(SCREENSHOT_DIR / "search_page_cropped.png"))

    # "Whole photo" clears the crop and the exact match is back on top.
    browser.find_element(By.ID, "clear-crop").click()
    _wait(
        browser,
        lambda d: _cards(d) and "score 1.000" in _cards(d)[0].text,
        "clearing the crop did not restore the whole-photo results",
    )
    assert _cards(browser)[0].get_attribute("data-sku") == "GRN-1"

    # The product page lists the other products as look-alikes, never the product itself.
    red = products["RED-1"]
    browser.get(f"{live_server.url}/products/{red.pk}/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Red mug"
    similar = _cards(browser, ".grid .card")
    assert sorted(c.get_attribute("data-sku") for c in similar) == ["BLU-1", "GRN-1"]
    gallery = browser.find_elements(By.CSS_SELECTOR, ".gallery img")
    assert len(gallery) == 1
    browser.save_screenshot(str(SCREENSHOT_DIR / "product_page.png"))
    # Following a look-alike card lands on that product's page.
    similar[0].click()
    _wait(
        browser,
        lambda d: d.current_url.rstrip("/").split("/")[-1] != str(red.pk),
        "card link did not navigate",
    )
    assert browser.find_element(By.TAG_NAME, "h1").text in {"Green lamp", "Blue vase"}


def test_words_typed_search_alone_and_rerank_a_photo(
    browser: Any, live_server: Any, e2e_catalog: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    _, photos = e2e_catalog
    browser.get(f"{live_server.url}/")
    words = browser.find_element(By.ID, "q")
    words.send_keys("green lmp")  # a typo still finds it
    _wait(browser, lambda d: [c.get_attribute("data-sku") for c in _cards(d)] == ["GRN-1"], "no word result")
    status = browser.find_element(By.ID, "status")
    assert "1 products" in status.text and "error" not in (status.get_attribute("class") or "")
    browser.save_screenshot(str(SCREENSHOT_DIR / "search_page_words.png"))
    words.clear()
    words.send_keys("!!")
    _wait(browser, lambda d: "error" in (status.get_attribute("class") or ""), "no error for wordless q")
    assert "no word or number" in status.text
    words.clear()
    words.send_keys("vase")
    _wait(browser, lambda d: [c.get_attribute("data-sku") for c in _cards(d)] == ["BLU-1"], "no vase")
    # With a photo of the lamp, the words lift the vase above the photo's own product.
    photo = tmp_path / "green-lamp.jpg"
    photo.write_bytes(photos["GRN-1"])
    browser.find_element(By.ID, "file").send_keys(str(photo))
    _wait(browser, lambda d: len(_cards(d)) == 3, "the photo with words did not show 3 products")
    assert [c.get_attribute("data-sku") for c in _cards(browser)][:2] == ["BLU-1", "GRN-1"]
