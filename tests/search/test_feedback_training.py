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


def test_only_clicks_a_shopper_could_make_are_trusted_once_per_client(
    api_client, indexed_catalog, settings, tmp_path
) -> None:
    """A script may ask for 100 results and "click" any of them, in every search, again and again:
    only a click at a position a result list shows counts, once per search, and a product gains
    weight from distinct clients only."""
    from search.log_selectors import FeedbackTally

    settings.SEARCH_LOG_PHOTOS = True
    settings.SEARCH_LOG_PHOTOS_DIR = tmp_path / "photos"
    settings.SEARCH_FEEDBACK_MAX_POSITION = 2
    products, photos = indexed_catalog

    def search(address: str) -> tuple[str, list[int]]:
        answer = api_client.post(
            "/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photos["BLU-1"]), "limit": 3},
            REMOTE_ADDR=address,
        )  # fmt: skip
        assert answer.status_code == 200, answer.content
        body = answer.json()
        return body["search_id"], [hit["product"]["id"] for hit in body["results"]]

    def click(address: str, search_id: str, shown: list[int], position: int) -> None:
        event = {
            "search_id": search_id,
            "product_id": shown[position - 1],
            "position": position,
            "type": "click",
        }
        reply = api_client.post("/api/v1/events/", event, format="json", REMOTE_ADDR=address)
        assert reply.status_code == 202, reply.content

    script, shopper = "198.51.100.7", "203.0.113.20"
    first, shown = search(script)
    assert len(shown) == 3
    click(script, first, shown, 3)  # past what a result list shows (2 here): dropped
    click(script, first, shown, 1)  # the search's first shown click: trusted
    click(script, first, shown, 2)  # a second click in the same search: dropped
    again, shown_again = search(script)
    click(script, again, shown_again, shown_again.index(shown[0]) + 1)  # the same product again: dropped
    other, shown_other = search(shopper)
    click(shopper, other, shown_other, shown_other.index(shown[0]) + 1)  # another client: trusted

    tally = FeedbackTally()
    examples = list(feedback_examples(tally=tally))
    assert [e.product_id for e in examples] == [shown[0], shown[0]]  # weighted by its two clients
    assert [e.search_id for e in examples] == [first, other]
    assert (tally.trusted, tally.past_shown, tally.repeat_in_search, tally.repeat_by_client) == (2, 1, 1, 1)
    assert tally.dropped == 3
    assert "2 trusted, 3 dropped" in tally.summary()
    # The second click is still no hard negative for the first: the shopper chose it too.
    assert shown[1] not in examples[0].negative_product_ids
