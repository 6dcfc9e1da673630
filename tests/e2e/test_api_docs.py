"""The API docs render in a real browser on a machine without internet: Swagger UI lists the
endpoints and ReDoc shows the API, from our own static files only (no CDN to fall back on here)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WAIT_S = 20


def _wait_for_text(driver: Any, css: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(d: Any) -> bool:
        return any(text in element.text for element in d.find_elements(By.CSS_SELECTOR, css))

    WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(shown, f"{text!r} never appeared in {css}")


def test_swagger_ui_and_redoc_render_offline(browser: Any, live_server: Any) -> None:
    browser.get(f"{live_server.url}/api/v1/docs/")
    _wait_for_text(browser, ".swagger-ui .info .title", "Lookalike API")
    _wait_for_text(browser, ".swagger-ui .opblock-summary-path", "/api/v1/search/")
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);"
    )
    assert loaded and all(url.startswith(live_server.url) for url in loaded), loaded

    browser.get(f"{live_server.url}/api/v1/redoc/")
    _wait_for_text(browser, "h1", "Lookalike API")
    _wait_for_text(browser, "h2", "search")  # ReDoc's section of the search endpoint
