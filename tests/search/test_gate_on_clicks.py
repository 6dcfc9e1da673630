"""The gate on a catalog with one photo per product: shoppers held out of training judge the models.

The real model, Qdrant Edge and the search log: shoppers search through the API with their photos kept
and click the product they wanted; a fixed fifth of them (by client) never reaches training, and their
clicked photos are what the gate compares a candidate with the active model on."""

from __future__ import annotations

from itertools import count

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import ProductImage
from search import log_selectors
from search.log_selectors import FeedbackTally, feedback_examples, held_for_gate
from search.models import SearchLog
from search.services import gate, reindex
from search.services.indexing import fill_collection
from search.vector_store import vector_store
from tests.support.reindex import reindex_start

pytestmark = pytest.mark.django_db

HELD = 3  # held-out shoppers the gate is asked to decide on (GATE_MIN_QUERIES, lowered for the test)


@pytest.fixture(autouse=True)
def kept_photos(settings, tmp_path):
    """Shoppers' photos are kept (SEARCH_LOG_PHOTOS): clicks on them are training data and gate queries."""
    settings.SEARCH_LOG_PHOTOS = True
    settings.SEARCH_LOG_PHOTOS_DIR = tmp_path / "photos"


def test_a_fixed_fifth_of_clients_is_held_for_the_gate() -> None:
    clients = [f"addr:{n:032x}" for n in range(2000)]
    held = [c for c in clients if held_for_gate(c)]
    assert 0.17 < len(held) / len(clients) < 0.23
    assert held == [c for c in clients if held_for_gate(c)]  # the same clients every time
    assert held_for_gate("user:7") == held_for_gate("user:7")


def _shop(api_client, photos, products, *, held: int, trained: int, first: int = 0) -> None:
    """Shoppers from distinct addresses (from the ``first``-th on) search the catalog photos of RED-1 and
    GRN-1 and click the one they photographed, until ``held`` of them are held out for the gate and
    ``trained`` are not."""
    wanted = {True: held, False: trained}
    skus = ["RED-1", "GRN-1"]
    for n in count(first):
        if not any(wanted.values()):
            return
        assert n < first + 200, f"too few addresses fell on one side: still wanted {wanted}"
        sku = skus[n % 2]
        address = f"198.51.{n // 250}.{n % 250 + 1}"
        answer = api_client.post(
            "/api/v1/search/", {"image": SimpleUploadedFile("q.jpg", photos[sku]), "limit": 3},
            REMOTE_ADDR=address,
        )  # fmt: skip
        assert answer.status_code == 200, answer.content
        body = answer.json()
        side = held_for_gate(SearchLog.objects.get(pk=body["search_id"]).client)
        if not wanted[side]:
            continue  # this side has enough: the search stays unclicked
        shown = [hit["product"]["id"] for hit in body["results"]]
        event = {
            "search_id": body["search_id"],
            "product_id": products[sku].pk,
            "position": shown.index(products[sku].pk) + 1,
            "type": "click",
        }
        reply = api_client.post("/api/v1/events/", event, format="json", REMOTE_ADDR=address)
        assert reply.status_code == 202, reply.content
        wanted[side] -= 1


def test_training_and_the_gate_split_the_clicks_by_shopper(api_client, indexed_catalog) -> None:
    products, photos = indexed_catalog
    _shop(api_client, photos, products, held=2, trained=3)

    tally = FeedbackTally()
    train = list(feedback_examples(part="train", tally=tally))
    held = list(feedback_examples(part="gate"))
    every = list(feedback_examples())
    assert (len(train), len(held), len(every)) == (3, 2, 5)
    assert {e.search_id for e in train} | {e.search_id for e in held} == {e.search_id for e in every}
    assert (tally.trusted, tally.held_for_gate) == (3, 2)
    assert "3 trusted" in tally.summary() and "2 more held out for the evaluation gate" in tally.summary()
    with pytest.raises(ValueError, match="part must be one of"):
        list(feedback_examples(part="test"))


def _mislabel(collection: str, product_id: int) -> None:
    """Every point of ``collection`` relabelled as ``product_id``: a model whose answers are all wrong
    for photos of any other product, whatever its vectors."""
    store = vector_store()
    ids = [str(pk) for pk in ProductImage.objects.values_list("pk", flat=True)]
    points = [
        (image_id, np.asarray(vec, np.float32).tolist(), {**payload, "product_id": product_id})
        for image_id, (vec, payload) in store.retrieve(collection, ids, with_vectors=True).items()
    ]
    store.upsert(collection, points)


def test_on_one_photo_per_product_the_gate_decides_on_held_out_shoppers(
    api_client, indexed_catalog, active_model, candidate, monkeypatch
) -> None:
    products, photos = indexed_catalog
    reindex_start(candidate)  # the candidate's collection, filled but not promoted: shoppers keep the active
    fill_collection([str(pk) for pk in ProductImage.objects.values_list("pk", flat=True)], candidate)
    _mislabel(candidate.collection, products["BLU-1"].pk)
    labels = {str(pk): pid for pk, pid in ProductImage.objects.values_list("pk", "product_id")}

    # Too few held-out clicks: augmented views, and only advice, which says what would let it decide.
    monkeypatch.setattr(gate, "GATE_MIN_QUERIES", HELD)
    _shop(api_client, photos, products, held=HELD - 1, trained=2)
    verdict = gate.evaluate(candidate, active_model, labels)
    assert verdict["candidate"]["queries"] == gate.ON_VIEWS
    assert verdict["passed"] is False and f"once {HELD} clicks" in verdict["advice_only"]
    assert f"({HELD - 1} now)" in verdict["advice_only"]

    # Enough: the held-out shoppers' photos decide, both ways, and the clicks training used do not count.
    _shop(api_client, photos, products, held=1, trained=0, first=200)  # new shoppers
    worse = gate.evaluate(candidate, active_model, labels)
    assert worse["candidate"]["queries"] == worse["active"]["queries"] == gate.ON_CLICKS
    assert worse["queries"] == HELD == len(list(log_selectors.feedback_examples(part="gate")))
    assert (worse["candidate"]["recall@1"], worse["active"]["recall@1"]) == (0.0, 1.0)
    assert (worse["candidate"]["recall@5"], worse["active"]["recall@5"]) == (0.0, 1.0)
    assert worse["passed"] is False and "advice_only" not in worse
    assert gate.gate_verdict(worse) == "worse"
    assert "on 3 photos of shoppers held out of training" in gate.gate_line(worse)
    better = gate.evaluate(active_model, candidate, labels)
    assert better["passed"] is True and better["candidate"]["recall@1"] == 1.0
    assert gate.gate_queries_label(better) == "photos of shoppers held out of training"
    # A shop with many: the most recent GATE_MAX_QUERIES of them.
    monkeypatch.setattr(gate, "GATE_MIN_QUERIES", 2)
    monkeypatch.setattr(gate, "GATE_MAX_QUERIES", 2)
    assert gate.evaluate(candidate, active_model, labels)["queries"] == 2


def test_a_rejected_candidate_on_clicks_stays_out_through_the_reindex_job(
    api_client, admin_client, indexed_catalog, active_model, candidate, monkeypatch
) -> None:
    from search.models import ReindexStatus
    from search.selectors import active_model as serving

    products, photos = indexed_catalog
    monkeypatch.setattr(gate, "GATE_MIN_QUERIES", HELD)
    _shop(api_client, photos, products, held=HELD, trained=0)
    job = reindex_start(candidate)
    fill = reindex.fill_collection  # fill as the job does, then mislabel before its gate runs

    def fill_then_mislabel(*args, **kwargs):
        fill(*args, **kwargs)
        _mislabel(candidate.collection, products["BLU-1"].pk)

    monkeypatch.setattr(reindex, "fill_collection", fill_then_mislabel)
    result = reindex.reindex_fill(job).result
    assert result["status"] == ReindexStatus.REJECTED
    assert result["gate"]["candidate"]["queries"] == gate.ON_CLICKS and result["gate"]["queries"] == HELD
    assert serving().pk == active_model.pk
    page = admin_client.get(f"/admin/search/job/{job.pk}/change/").content.decode()
    assert f"on {HELD} photos of shoppers held out of training" in page
    assert "Verdict: worse" in page and "<th>R@1</th><td>0.000</td><td>1.000</td>" in page


def test_too_few_held_out_catalog_photos_give_way_to_more_held_out_clicks(
    api_client, indexed_catalog, active_model, candidate, monkeypatch
) -> None:
    from catalog import services
    from tests.fixtures.images import image_bytes

    products, photos = indexed_catalog
    for n, product in enumerate(products.values()):  # a second photo each: 3 held-out photos to judge on
        services.product_image_add(product=product, data=image_bytes(color=(90, 90, 90), pattern=100 + n))
    images = list(ProductImage.objects.order_by("product_id", "display_order"))
    candidate.eval_image_ids = [str(i.pk) for i in images if i.display_order == 0]
    candidate.save()
    reindex_start(candidate)
    fill_collection([str(i.pk) for i in images], candidate)
    labels = {str(i.pk): i.product_id for i in images}
    _shop(api_client, photos, products, held=4, trained=0)

    monkeypatch.setattr(gate, "GATE_MIN_QUERIES", 3)  # 3 held-out photos suffice: they judge
    assert gate.evaluate(candidate, active_model, labels)["candidate"].get("queries") != gate.ON_CLICKS
    monkeypatch.setattr(gate, "GATE_MIN_QUERIES", 4)  # they do not; the 4 held-out shoppers do
    verdict = gate.evaluate(candidate, active_model, labels)
    assert verdict["candidate"]["queries"] == gate.ON_CLICKS and verdict["queries"] == 4
