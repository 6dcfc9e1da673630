"""Shoppers' clicks become training data: the clicked photo, cropped as searched, and what was skipped."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from search.log_selectors import feedback_examples
from search.services.training import feedback_items

pytestmark = pytest.mark.django_db


def test_a_click_on_a_kept_photo_is_a_cropped_positive_with_its_skips(
    api_client, indexed_catalog, settings, tmp_path
) -> None:
    from tests.fixtures.images import image_bytes

    settings.SEARCH_LOG_PHOTOS = True
    settings.SEARCH_LOG_PHOTOS_DIR = tmp_path / "photos"
    products, photos = indexed_catalog
    photo = image_bytes(color=(20, 200, 40), size=(64, 48), pattern=2)
    response = api_client.post(
        "/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photo), "limit": 3, "crop": "4,4,40,30"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    skus = [hit["product"]["sku"] for hit in body["results"]]
    clicked = skus.index("BLU-1") + 1  # whatever came first, the shopper wanted the vase
    event = {
        "search_id": body["search_id"],
        "product_id": products["BLU-1"].pk,
        "position": clicked,
        "type": "click",
    }
    assert api_client.post("/api/v1/events/", event, format="json").status_code == 202

    examples = list(feedback_examples())
    assert [e.sku for e in examples] == ["BLU-1"]
    items, negatives = feedback_items(examples)
    ((source, label),) = items
    assert label == "BLU-1"
    with Image.open(io.BytesIO(source())) as cropped:
        assert cropped.size == (40, 30)  # the part of the photo the shopper searched with
    assert negatives == {"BLU-1": skus[: clicked - 1]}
