"""A search that meets the database restarting is tried again on a fresh connection and answers 200
when the server is back within SEARCH_DATABASE_RETRY_S; a longer outage answers 503 with its code.
The restart is played on this test's own connection (pointed at a port nobody listens on, then back):
the machine's PostgreSQL keeps running."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import override_settings

from catalog import services
from tests.fixtures.images import image_bytes
from tests.support.serving_fixtures import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def product(active_model):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the restart is a server's")
    made = services.product_create(sku="MUG-1", title="Red enamel mug", category="kitchen")
    services.product_image_add(product=made, data=image_bytes(color=(200, 30, 30), size=(64, 64), pattern=2))
    return made


def _down_for(seconds: float) -> threading.Timer:
    """Refuse every new connection of this thread's database connection for ``seconds``."""
    real_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    back = threading.Timer(seconds, connection.settings_dict.__setitem__, ("PORT", real_port))
    back.start()
    return back


def _photo_search_while_down(client, *, down_s: float, retry_s: float):
    """A photo search sent while this thread's connection is refused for ``down_s`` seconds."""
    photo = image_bytes(color=(200, 30, 30), size=(64, 64), pattern=2)
    with override_settings(SEARCH_DATABASE_RETRY_S=retry_s):
        back = _down_for(down_s)
        try:
            return client.post("/api/v1/search/", {"image": _upload(photo)}, format="multipart")
        finally:
            back.join()
            connection.close()


def test_a_search_rides_out_a_short_restart(api_client, product) -> None:
    response = _photo_search_while_down(api_client, down_s=1.0, retry_s=10.0)
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["product"]["sku"] == "MUG-1"


def test_an_outage_longer_than_the_retry_answers_503_with_its_code(api_client, product) -> None:
    response = _photo_search_while_down(api_client, down_s=3.0, retry_s=0.6)
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_unavailable"
    assert api_client.post("/api/v1/search/", {"q": "red mug"}, format="json").status_code == 200


def _upload(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("q.png", data, content_type="image/png")
