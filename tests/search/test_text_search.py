"""Search by words: the text index (one sparse point per product in the real embedded store) kept in
step with the catalog through the real on-commit task path, and ``q`` on POST /api/v1/search/."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from catalog import services
from catalog.services.activation import products_deactivate
from search.models import SearchLog
from search.services.text_index import TEXT_COLLECTION, point_id
from search.vector_store import vector_store
from tests.fixtures.images import image_bytes

pytestmark = pytest.mark.django_db

# sku, title, brand, category, price, in stock, attributes, description
PRODUCTS = [
    ("ALP-1", "Alpro Fresh Soy Milk", "Alpro", "dairy", "2.10", True, {"size": "1 l"}, "Plant drink."),
    (
        "OAT-15",
        "Oatly Oat Drink 1,5%",
        "Oatly",
        "dairy",
        "1.90",
        True,
        {"fat": "1,5%"},
        "Semi-skimmed oat drink.",
    ),
    ("OAT-3", "Oatly Oat Drink 3%", "Oatly", "dairy", "2.20", False, {"fat": "3%"}, "Whole oat drink."),
    ("BRV-A", "Bravo Apple Juice", "Bravo", "juice", "1.50", True, {"flavour": "apple"}, "Pressed apples."),
    ("BRV-O", "Bravo Orange Juice", "Bravo", "juice", "1.60", True, {"flavour": "orange"}, "From oranges."),
    ("YOG-1", "Arla Natural Yoghurt", "Arla", "dairy", "0.99", True, {}, "Mild and creamy."),
]


@pytest.fixture
def shop(active_model, django_capture_on_commit_callbacks):
    products = {}
    with django_capture_on_commit_callbacks(execute=True):
        for n, (sku, title, brand, category, price, stock, attributes, description) in enumerate(PRODUCTS):
            product = services.product_create(
                sku=sku,
                title=title,
                brand=brand,
                category=category,
                price=price,
                in_stock=stock,
                attributes=attributes,
                description=description,
            )
            data = image_bytes(color=(30 * n, 200 - 30 * n, 90), size=(64, 64), pattern=n + 1)
            services.product_image_add(product=product, data=data)
            products[sku] = product
    return products


def _search(client, **params):
    return client.post("/api/v1/search/", params, format="json")


def _skus(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["product"]["sku"] for r in response.json()["results"]]


def _error(response) -> str:
    return response.json()["error"]["code"]


def test_words_alone_find_the_product_by_title_brand_attribute_and_quantity(api_client, shop) -> None:
    assert _skus(_search(api_client, q="alpro soy milk"))[0] == "ALP-1"
    assert _skus(_search(api_client, q="bravo apple juice"))[0] == "BRV-A"
    assert _skus(_search(api_client, q="Bravo orange"))[0] == "BRV-O"
    # A quantity is one token: "1,5%" tells the two oat drinks apart, whichever way it is written.
    assert _skus(_search(api_client, q="oatly 1.5%"))[0] == "OAT-15"
    assert _skus(_search(api_client, q="oat drink 3 %"))[0] == "OAT-3"
    # The description and the attributes are searched too.
    assert _skus(_search(api_client, q="creamy"))[0] == "YOG-1"
    # Only products sharing a word: nothing else is returned as a "result".
    assert set(_skus(_search(api_client, q="juice", limit=10))) == {"BRV-A", "BRV-O"}
    assert _skus(_search(api_client, q="sandpaper")) == []


def test_a_typo_or_a_partial_name_still_finds_it(api_client, shop) -> None:
    assert _skus(_search(api_client, q="yoghrt"))[0] == "YOG-1"
    assert _skus(_search(api_client, q="alpo soy"))[0] == "ALP-1"
    assert "BRV-O" in _skus(_search(api_client, q="orang", limit=5))


def test_the_answer_shows_each_product_once_with_its_image(api_client, shop) -> None:
    response = _search(api_client, q="oatly oat", limit=5)
    body = response.json()
    skus = _skus(response)
    assert sorted(skus) == ["OAT-15", "OAT-3"] and len(set(skus)) == len(skus)
    first = body["results"][0]
    assert first["image_id"] == str(shop[skus[0]].images.get().pk)
    assert first["product"]["image_url"].startswith("http://testserver/")
    assert first["match"] is None and body["no_match"] is None
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert SearchLog.objects.get(id=body["search_id"]).query_kind == "text"


def test_filters_apply_to_words(api_client, shop) -> None:
    assert _skus(_search(api_client, q="oatly", in_stock=True, limit=10)) == ["OAT-15"]
    assert _skus(_search(api_client, q="drink milk juice", category=["juice"], limit=10)) in (
        ["BRV-A", "BRV-O"],
        ["BRV-O", "BRV-A"],
    )
    assert set(_skus(_search(api_client, q="oatly bravo", max_price="1.55", limit=10))) == {"BRV-A"}


def test_catalog_changes_reach_the_text_index(api_client, shop, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.product_update(product=shop["YOG-1"], title="Arla Greek Skyr", description="Thick.")
    assert _skus(_search(api_client, q="skyr")) == ["YOG-1"]
    assert _skus(_search(api_client, q="creamy")) == []  # the old description left the index
    with django_capture_on_commit_callbacks(execute=True):
        products_deactivate(product_ids=[shop["BRV-A"].pk])
    assert _skus(_search(api_client, q="bravo juice", limit=10)) == ["BRV-O"]
    with django_capture_on_commit_callbacks(execute=True):
        services.product_delete(product=shop["BRV-O"])
    assert _skus(_search(api_client, q="bravo juice", limit=10)) == []
    # A product without an image is not in the index: a result is shown as an image.
    with django_capture_on_commit_callbacks(execute=True):
        bare = services.product_create(sku="BARE-1", title="Zanzibar spice mix")
    assert _skus(_search(api_client, q="zanzibar")) == []
    with django_capture_on_commit_callbacks(execute=True):
        services.product_image_add(product=bare, data=image_bytes(color=(5, 5, 5), size=(64, 64)))
    assert _skus(_search(api_client, q="zanzibar")) == ["BARE-1"]


def test_a_new_image_writes_a_text_point_only_where_the_product_has_none(api_client, shop) -> None:
    from search.services.text_index import sync_images_text

    product = shop["ALP-1"]
    more = services.product_image_add(product=product, data=image_bytes(color=(9, 99, 9), size=(64, 64)))
    assert sync_images_text([str(more.image.pk)]) == 0  # its point is there: the image adds no word
    vector_store().delete(TEXT_COLLECTION, [point_id(product.pk)])  # lost (a store restored from old)
    assert _skus(_search(api_client, q="alpro")) == []
    another = services.product_image_add(product=product, data=image_bytes(color=(9, 9, 99), size=(64, 64)))
    assert sync_images_text([str(another.image.pk)]) == 1
    assert _skus(_search(api_client, q="alpro")) == ["ALP-1"]


def test_words_rerank_more_like_this(api_client, shop) -> None:
    plain = _skus(_search(api_client, sku="OAT-15", limit=5))
    with_words = _skus(_search(api_client, sku="OAT-15", q="bravo juice", limit=5))
    assert "OAT-15" not in with_words  # more like this still leaves the product itself out
    # The products in both rankings (alike, and with the words) come first, in whichever order the
    # fusion gives; the rest follow as they looked.
    assert set(with_words[:2]) == {"BRV-A", "BRV-O"}
    assert [s for s in with_words if s not in ("BRV-A", "BRV-O")] == [
        s for s in plain if s not in ("BRV-A", "BRV-O")
    ][: len(with_words) - 2]


def test_words_rerank_a_photo(api_client, shop) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    photo = image_bytes(color=(0, 200, 90), size=(64, 64), pattern=1)  # ALP-1's own photo
    upload = SimpleUploadedFile("q.jpg", photo, content_type="image/jpeg")
    alone = api_client.post("/api/v1/search/", {"image": upload, "limit": 3}, format="multipart")
    assert _skus(alone)[0] == "ALP-1"
    upload = SimpleUploadedFile("q.jpg", photo, content_type="image/jpeg")
    both = api_client.post(
        "/api/v1/search/", {"image": upload, "q": "alpro soy", "limit": 3}, format="multipart"
    )
    body = both.json()
    assert _skus(both)[0] == "ALP-1"
    assert body["results"][0]["image_id"] == str(shop["ALP-1"].images.get().pk)
    assert body["no_match"] is None  # fused ranks, not similarities: no verdict


def test_bad_words_are_refused_with_a_code(api_client, shop, settings) -> None:
    for q in ("", "   ", "!!! ,,, -"):
        response = _search(api_client, q=q)
        assert response.status_code == 400 and _error(response) == "query_empty", q
    response = _search(api_client, q="milk " * 50)
    assert response.status_code == 400 and _error(response) == "query_too_long"
    # Refused before the photo is fetched: no request goes out for a query that cannot run.
    settings.IMAGE_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    response = _search(api_client, q="x" * 201, image_url="http://127.0.0.1:9/never.jpg")
    assert response.status_code == 400 and _error(response) == "query_too_long"
    response = _search(api_client, q="milk", sku="OAT-3", product_id=shop["ALP-1"].pk)
    assert response.status_code == 400 and _error(response) == "invalid_parameter"
    response = _search(api_client, q="milk", crop="0,0,10,10")
    assert response.status_code == 400 and _error(response) == "invalid_parameter"


def test_words_before_any_text_was_indexed_find_nothing(api_client, active_model) -> None:
    assert not vector_store().collection_exists(TEXT_COLLECTION)
    assert _skus(_search(api_client, q="milk")) == []


def test_the_rebuild_command_restores_the_index(api_client, shop) -> None:
    store = vector_store()
    store.drop_collection(TEXT_COLLECTION)
    assert _skus(_search(api_client, q="alpro")) == []
    # A point of a product that no longer exists is removed by the rebuild.
    from search.vector_store import SparseVector

    store.ensure_sparse_collection(TEXT_COLLECTION)
    store.upsert_sparse(
        TEXT_COLLECTION, [(point_id(999_999), SparseVector([1], [1.0]), {"product_id": 999_999})]
    )
    out = StringIO()
    call_command("rebuild_text_index", stdout=out)
    assert "6 product(s) written, 1 gone removed" in out.getvalue()
    assert _skus(_search(api_client, q="alpro"))[0] == "ALP-1"
    assert store.count(TEXT_COLLECTION) == len(PRODUCTS)


@pytest.mark.slow
def test_words_read_on_a_photo_make_the_product_findable(
    api_client, active_model, django_capture_on_commit_callbacks
) -> None:
    from search.services.image_text import images_text_read
    from tests.fixtures.text_images import text_jpeg

    with django_capture_on_commit_callbacks(execute=True):
        product = services.product_create(sku="PACK-1", title="Breakfast pack")
        image = services.product_image_add(product=product, data=text_jpeg(["ZYGOMAX 500 ML"])).image
    assert _skus(_search(api_client, q="zygomax")) == []  # not read yet (OCR is off in tests' settings)
    images_text_read([str(image.pk)])  # what the background reader runs (the real engine)
    assert _skus(_search(api_client, q="zygomax 500ml")) == ["PACK-1"]


def test_reconcile_repairs_the_text_index(api_client, shop) -> None:
    # What a store outage during an upload leaves: a product without its text point.
    vector_store().delete_by_product(TEXT_COLLECTION, shop["ALP-1"].pk)
    assert _skus(_search(api_client, q="alpro")) == []
    out = StringIO()
    call_command("reconcile_index", stdout=out)
    assert "text index: 6 product(s) written" in out.getvalue()
    assert _skus(_search(api_client, q="alpro"))[0] == "ALP-1"


@pytest.mark.slow
def test_reading_text_beside_the_store_owner_says_how_to_index_the_words(
    api_client, active_model, vector_store_path
) -> None:
    from search.vector_store import EdgeVectorStore, reset_vector_store
    from tests.fixtures.text_images import text_jpeg

    product = services.product_create(sku="PACK-2", title="Lunch pack")
    services.product_image_add(product=product, data=text_jpeg(["QUORBIX"]))
    reset_vector_store()
    owner = EdgeVectorStore(vector_store_path)  # a running site holding the embedded store
    try:
        out = StringIO()
        call_command("read_image_text", stdout=out)
    finally:
        owner.close()
    assert "Read 1 image(s)" in out.getvalue()
    assert "run `manage.py rebuild_text_index`" in out.getvalue()
    call_command("rebuild_text_index", stdout=StringIO())
    assert _skus(_search(api_client, q="quorbix")) == ["PACK-2"]
