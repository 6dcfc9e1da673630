"""Calibrated answers: hits say "same" or "similar", answers say "no_match"; the pretrained model is
calibrated from the catalog itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog import services
from catalog.models import ProductImage
from search.models import ModelVersion
from search.selectors import forget_active_model
from search.services.calibration import (
    MIN_IMAGES,
    SOURCE_GROUPS,
    SOURCE_VIEWS,
    _scored_on_held_out_groups,
    calibrate_from_catalog,
)
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db


def _search(api_client, photo: bytes) -> dict:
    response = api_client.post("/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photo), "limit": 3})
    assert response.status_code == 200, response.content
    return response.json()


def test_an_uncalibrated_model_says_nothing_about_matches(api_client, indexed_catalog) -> None:
    _, photos = indexed_catalog
    body = _search(api_client, photos["RED-1"])
    assert body["no_match"] is None
    assert {hit["match"] for hit in body["results"]} == {None}


def test_a_calibrated_model_labels_the_first_hit_and_says_no_match(
    api_client, indexed_catalog, active_model
) -> None:
    _, photos = indexed_catalog
    ModelVersion.objects.filter(pk=active_model.pk).update(calibration={"same": 0.999, "margin": 0.0})
    exact = _search(api_client, photos["GRN-1"])  # the indexed photo itself: score 1
    assert exact["no_match"] is False
    assert [hit["match"] for hit in exact["results"]] == ["same", "similar", "similar"]
    assert exact["results"][0]["product"]["sku"] == "GRN-1"
    other = _search(api_client, image_bytes(color=(120, 60, 200), size=(64, 64), pattern=41))
    assert other["no_match"] is True
    assert {hit["match"] for hit in other["results"]} == {"similar"}


def test_thresholds_from_catalog_views_say_same_but_never_no_match(
    api_client, indexed_catalog, active_model
) -> None:
    """A one-photo catalog's thresholds come from views of its own pictures: a copy of the shop's
    picture is "same", but a shopper's photo under them is no evidence the product is not sold."""
    _, photos = indexed_catalog
    views = {"same": 0.999, "margin": 0.0, "source": SOURCE_VIEWS}
    ModelVersion.objects.filter(pk=active_model.pk).update(calibration=views)
    exact = _search(api_client, photos["GRN-1"])
    assert exact["no_match"] is False and exact["results"][0]["match"] == "same"
    other = _search(api_client, image_bytes(color=(120, 60, 200), size=(64, 64), pattern=41))
    assert other["no_match"] is None
    assert {hit["match"] for hit in other["results"]} == {"similar"}
    # The same thresholds fitted on held-out photos of the shop's own may say it.
    ModelVersion.objects.filter(pk=active_model.pk).update(calibration={**views, "source": SOURCE_GROUPS})
    forget_active_model()  # searches read the active model through a short-lived cache
    assert (
        _search(api_client, image_bytes(color=(120, 60, 200), size=(64, 64), pattern=41))["no_match"] is True
    )


@pytest.mark.parametrize("by", ["sku", "product_id", "image_id"])
def test_more_like_this_answers_carry_no_match_verdict(api_client, indexed_catalog, active_model, by) -> None:
    # A "looks similar" block asks for products like this one, which is left out of its own answer:
    # "no exact match" would head every such answer, so a query by product or image gets no verdict.
    products, _ = indexed_catalog
    ModelVersion.objects.filter(pk=active_model.pk).update(calibration={"same": 0.0, "margin": 0.0})
    product = products["RED-1"]
    query = {
        "sku": product.sku,
        "product_id": product.pk,
        "image_id": str(product.images.get().pk),
    }[by]
    response = api_client.post("/api/v1/search/", {by: query, "limit": 3}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["results"]) == 2 and "RED-1" not in {hit["product"]["sku"] for hit in body["results"]}
    assert body["no_match"] is None
    assert {hit["match"] for hit in body["results"]} == {None}


def test_the_pretrained_model_is_calibrated_from_catalog_views(
    active_model, django_capture_on_commit_callbacks
) -> None:
    colours = [
        (220, 30, 30),
        (30, 180, 40),
        (30, 60, 220),
        (230, 210, 20),
        (20, 200, 200),
        (200, 20, 200),
        (90, 90, 90),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for n, colour in enumerate(colours):
            product = services.product_create(sku=f"P{n}", title=f"p{n}")
            for k in range(3):
                services.product_image_add(
                    product=product, data=image_bytes(color=colour, size=(64, 64), pattern=10 * n + k)
                )
    fitted = calibrate_from_catalog(active_model)
    assert fitted is not None and fitted.queries == 3 * len(colours) >= MIN_IMAGES
    stored = ModelVersion.objects.get(pk=active_model.pk)
    assert stored.calibration["same"] == pytest.approx(fitted.same, abs=1e-4)
    assert stored.calibration["source"] == SOURCE_VIEWS  # 3 photos each: too few to hold any out
    assert Path(stored.calibration_plot_path).read_bytes()[:4] == b"\x89PNG"


def test_a_catalog_too_small_to_fit_leaves_the_model_uncalibrated(active_model, indexed_catalog) -> None:
    assert calibrate_from_catalog(active_model) is None
    assert ModelVersion.objects.get(pk=active_model.pk).calibration == {}


def _catalog_of_shoots(products: int, photos: int, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(products):
            colour = ((37 * n) % 256, (91 * n + 40) % 256, (151 * n + 80) % 256)
            product = services.product_create(sku=f"S{n}", title=f"s{n}")
            for k in range(photos):
                # One product's photos: the same picture framed a little differently (a shoot).
                services.product_image_add(
                    product=product, data=image_bytes(color=colour, size=(60 + 2 * k, 64), pattern=n)
                )


def test_with_several_photos_per_product_the_pretrained_model_is_calibrated_on_held_out_groups(
    active_model, django_capture_on_commit_callbacks
) -> None:
    _catalog_of_shoots(12, 5, django_capture_on_commit_callbacks)
    fitted = calibrate_from_catalog(active_model)
    assert fitted is not None and MIN_IMAGES <= fitted.queries < 12 * 5
    stored = ModelVersion.objects.get(pk=active_model.pk)
    assert stored.calibration["source"] == SOURCE_GROUPS


def test_a_held_out_photo_is_never_its_own_match_and_its_product_is_gone_when_not_sold(
    active_model, django_capture_on_commit_callbacks
) -> None:
    _catalog_of_shoots(12, 5, django_capture_on_commit_callbacks)
    rows = list(ProductImage.objects.values_list("pk", "file", "product_id"))
    scored = _scored_on_held_out_groups(active_model, rows, seed=0)
    assert scored is not None and len(scored["in_score"]) >= MIN_IMAGES
    # Searched against the catalog, every stored photo would find itself at score 1: a held-out
    # query's own look-alike group is out of its gallery.
    assert float(scored["in_score"].max()) < 0.9999
    # "Not sold": the product is left out of the search entirely (with it in, the query's own stored
    # vector would answer at score 1), and its distinct colour puts the others well below it.
    assert float(scored["out_score"].max()) < 0.9999
    # Its own product's other framings still find it far more often than chance (1 in 12); the test
    # model (random weights, 32 px) is no better than that at telling framings apart.
    assert float(scored["in_correct"].mean()) >= 0.5
    assert float(np.median(scored["out_score"])) < float(np.median(scored["in_score"]))


def test_one_photo_per_product_falls_back_to_views(active_model, django_capture_on_commit_callbacks) -> None:
    _catalog_of_shoots(24, 1, django_capture_on_commit_callbacks)
    rows = list(ProductImage.objects.values_list("pk", "file", "product_id"))
    assert _scored_on_held_out_groups(active_model, rows, seed=0) is None
    fitted = calibrate_from_catalog(active_model)
    assert fitted is not None
    assert ModelVersion.objects.get(pk=active_model.pk).calibration["source"] == SOURCE_VIEWS
