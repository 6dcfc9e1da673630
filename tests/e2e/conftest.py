"""A real browser (Debian's chromium + chromedriver, driven by Selenium) against pytest-django's live server.

The live server runs in a thread of the test process, so it shares the embedded vector store and the
in-process model with the fixtures below. Without chromium or chromedriver the tests skip, unless
E2E_REQUIRED is set (CI sets it): then a missing browser is a failure, not a silent pass.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Reuse the search tests' session-scoped export (a tiny real SavedModel) and per-test store folder.
from tests.support.model_fixtures import activate_exported

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO / "var" / "e2e"  # git-ignored (var/)

# Without the background-networking flags Chromium's own connections (component updates, safe
# browsing, sync) are refused on these machines and slow or break start-up.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # small /dev/shm in containers makes tabs crash
    "--window-size=1280,1100",
]

# Three products with visibly different photos (as tests/search/conftest.py's indexed_catalog), but
# 256 px so the page's preview is big enough to drag a crop box on.
CATALOG = [
    ("RED-1", "Red mug", "kitchen", "5.00", True, (220, 20, 20), 1),
    ("GRN-1", "Green lamp", "lighting", "40.00", True, (20, 200, 40), 2),
    ("BLU-1", "Blue vase", "kitchen", "15.00", False, (20, 40, 220), 3),
]


def _browser_missing() -> str | None:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return None
    return (
        f"{' and '.join(missing)} not found (apt-get install chromium chromium-driver; pip install selenium)"
    )


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    problem = _browser_missing()
    if problem:
        if os.environ.get("E2E_REQUIRED"):
            pytest.fail(f"E2E_REQUIRED is set but {problem}", pytrace=False)
        pytest.skip(f"browser tests skipped: {problem}; set E2E_REQUIRED=1 to fail instead")

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    # A fresh profile per run: no cached pages, cookies or first-run state from an earlier session.
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # An explicit driver path keeps Selenium Manager from trying to download one (no internet here).
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def e2e_model(transactional_db, exported_bootstrap, vector_store_path):
    """The tiny bootstrap model registered and active, with an empty collection in a fresh store.

    MEDIA_ROOT is deliberately left at the test settings' per-run folder: config.urls binds the media
    view's document_root when it is first imported, so a per-test MEDIA_ROOT would 404 the photos.
    """
    return activate_exported(exported_bootstrap)


@pytest.fixture
def e2e_catalog(e2e_model) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Three products indexed through the real path: in a transactional test each service call commits,
    its on_commit callback runs at once and the eager Celery task embeds and upserts in-process."""
    from catalog import services
    from catalog.models import IndexStatus, ProductImage
    from tests.fixtures.images import image_bytes

    products, photos = {}, {}
    for sku, title, category, price, stock, colour, pattern in CATALOG:
        product = services.product_create(
            sku=sku, title=title, category=category, price=price, in_stock=stock
        )
        data = image_bytes(color=colour, size=(256, 256), pattern=pattern)
        services.product_image_add(product=product, data=data, original_name=f"{sku.lower()}.jpg")
        products[sku], photos[sku] = product, data
    # Eager tasks swallow their errors (CELERY_TASK_EAGER_PROPAGATES=False): check they really indexed.
    statuses = set(ProductImage.objects.values_list("index_status", flat=True))
    assert statuses == {IndexStatus.INDEXED}, statuses
    return products, photos
