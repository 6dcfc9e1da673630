"""The model life cycle in a real browser: an editor signs in to the admin, trains a candidate (a tiny
configuration: random weights, 32 px, one epoch), watches the job's progress reach the end, presses
"Reindex and promote", and sees the evaluation gate's verdict and the served model change. The jobs run
on this process's runner threads, as in the embedded web process; the training in a real process."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOT_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

COLOURS = [(220, 30, 30), (30, 200, 40), (30, 60, 220)]
TRAIN_S = 150  # a real training process: TensorFlow's start, one epoch, evaluation, export (about 45 s here)


@pytest.fixture
def lifecycle_site(e2e_model, staff_user, settings, tmp_path, monkeypatch):
    """Three products with six photos each (enough to hold one out per product), and this process
    running jobs as the embedded web process does."""
    from catalog import services
    from search.embedders import reset_embedders
    from search.vector_store import vector_store
    from tests.fixtures.images import image_bytes
    from workers.embedded import JobRunner

    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings.base")  # the training process's settings
    settings.VAR_DIR = tmp_path / "var"
    reset_embedders()  # the trained model is a new v8: no embedder an earlier test loaded for its v8
    for n, colour in enumerate(COLOURS):
        product = services.product_create(sku=f"P{n}", title=f"product {n}")
        for k in range(6):
            services.product_image_add(
                product=product, data=image_bytes(color=colour, size=(48, 48), pattern=10 * n + k)
            )
    vector_store()
    runner = JobRunner(poll_s=0.2).start()
    yield e2e_model
    runner.stop()


def _wait(driver: Any, condition: Any, message: str, timeout: float) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The job page reloads itself when the job ends: elements found a moment ago may be gone.
    wait = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.25,
        ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
    )
    return wait.until(condition, message)


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def test_train_a_candidate_then_reindex_and_promote_it(
    browser: Any, live_server: Any, lifecycle_site: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    active = lifecycle_site
    browser.get(f"{live_server.url}/admin/login/?next=/admin/search/modelversion/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("pw-for-tests-only")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _wait(browser, lambda d: "Serving now" in _text(d, "serving-now"), "the model list", 20)
    assert f"v{active.version}" in _text(browser, "serving-now") and "pretrained" in _text(
        browser, "serving-now"
    )

    # Train a candidate: the form starts from TrainConfig's defaults; a tiny configuration here.
    # Found by address: the admin's CSS shows object-tool links in capitals.
    browser.find_element(By.CSS_SELECTOR, "a[href$='/admin/search/modelversion/train/']").click()
    # MobileNetV2 at 32 px with random weights still gives non-zero features (a 32 px Lite0 may not).
    form = {
        "weights": "none",
        "image_size": "32",
        "epochs": "1",
        "steps_per_epoch": "2",
        "trainable_blocks": "5",
    }
    assert browser.find_element(By.NAME, "epochs").get_attribute("value") == "15"
    assert browser.find_element(By.NAME, "mode").get_attribute("value") == "cached"
    Select(browser.find_element(By.NAME, "backbone")).select_by_value("mobilenet_v2_035")
    for name, value in form.items():
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    promote_after = browser.find_element(By.NAME, "then_promote")
    if promote_after.is_selected():
        promote_after.click()  # promoted by hand below
    browser.find_element(By.NAME, "train").click()

    # The job's page follows the training live, then shows it done.
    _wait(browser, lambda d: "/admin/search/job/" in d.current_url, "the job page", 20)
    assert "Train a candidate" in browser.page_source
    _wait(browser, lambda d: _text(d, "job-state") == "Succeeded", "the training to succeed", TRAIN_S)
    bar = browser.find_element(By.ID, "job-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "3", _text(browser, "job-log")
    assert "Candidate model v" in _text(browser, "job-summary")
    assert "at nice 10" in _text(browser, "job-log")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "admin_train_job.png"))

    # Reindex and promote the candidate (forced: a one-epoch model on random weights may well lose).
    browser.find_element(By.ID, "promote-candidate").click()
    browser.find_element(By.NAME, "force").click()
    browser.find_element(By.NAME, "promote").click()
    _wait(browser, lambda d: _text(d, "job-state") == "Succeeded", "the promotion", 60)
    assert _text(browser, "gate-verdict").lower() in (
        "evaluation gate: promoted",
        "evaluation gate: promoted (forced)",
    )
    table = _text(browser, "gate-table")
    assert "R@1" in table and "mAP@R" in table and f"active v{active.version}" in table.lower()
    assert browser.find_element(By.ID, "candidate-plot").get_attribute("naturalWidth") != "0"
    serving = _text(browser, "job-serving")
    assert serving.endswith("(trained on your catalog)") and serving != f"v{active.version} (pretrained)"
    browser.save_screenshot(str(SCREENSHOT_DIR / "admin_promote_job.png"))

    browser.get(f"{live_server.url}/admin/search/modelversion/")
    assert "trained on your catalog" in _text(browser, "serving-now")
