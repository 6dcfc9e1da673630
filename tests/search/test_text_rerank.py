"""A photo's visual answer re-ranked by the words on the pack: the real OCR engine (ml.ocr's query
profile), the real exported model and the real embedded store, through POST /api/v1/search/.

The packs are drawn with Pillow: the same pack with a different name printed on it large, which the
test model (32 px) can hardly tell apart and the OCR reads."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageFont

from catalog import services
from ml import ocr
from search.services.text_rerank import combine, margin, warm_up
from search.vector_store import Hit

pytestmark = pytest.mark.django_db

PACK = (40, 90, 160)  # a yellow carton with a blue band
OTHER_PACK = (200, 40, 40)  # the same carton with a red band


def pack(word: str | None, band: tuple[int, int, int] = PACK) -> bytes:
    """A pack-like picture: a yellow carton with a wide band, and ``word`` printed large across it."""
    image = Image.new("RGB", (360, 360), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 20, 320, 340), fill=(230, 200, 40))
    draw.rectangle((40, 200, 320, 330), fill=band)
    if word:
        draw.text((60, 110), word, fill=(20, 20, 20), font=ImageFont.load_default(size=64))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture
def rerank_on(settings):
    settings.SEARCH_TEXT_RERANK = True
    settings.SEARCH_TEXT_MARGIN = 1.0  # every answer counts as unclear: the test model's scores are close
    settings.SEARCH_TEXT_WEIGHT = 1.0
    settings.SEARCH_TEXT_BUDGET_MS = 20000  # the first reading builds the engine (about a second)
    return settings


@pytest.fixture
def packs(active_model, django_capture_on_commit_callbacks):
    """Two look-alike packs whose names differ (their titles reach the text index on commit)."""
    products = {}
    with django_capture_on_commit_callbacks(execute=True):
        for sku, title, word, colour in (
            ("MNG", "Mango Juice", "MANGO", PACK),
            ("ZBR", "Zebra Coffee", "ZEBRA", OTHER_PACK),
        ):
            product = services.product_create(sku=sku, title=title, category="pantry", price="2.00")
            services.product_image_add(product=product, data=pack(word, colour))
            products[sku] = product
    return products


def _search(client, data: bytes):
    answer = client.post("/api/v1/search/", {"image": io.BytesIO(data), "limit": 2}, format="multipart")
    assert answer.status_code == 200, answer.content
    return answer.json()


def _skus(body) -> list[str]:
    return [r["product"]["sku"] for r in body["results"]]


def test_the_query_profile_reads_a_name_printed_on_a_pack() -> None:
    words = ocr.read_query_words(Image.open(io.BytesIO(pack("ZEBRA"))), budget_s=20)
    assert "ZEBRA" in " ".join(w.text for w in words).upper()


def test_warm_up_builds_the_query_reader_only_when_reranking_is_on(settings, monkeypatch) -> None:
    monkeypatch.setattr(ocr, "_query_engine", None)  # restored afterwards: other tests keep theirs
    settings.SEARCH_TEXT_RERANK = False
    warm_up()
    assert ocr._query_engine is None
    settings.SEARCH_TEXT_RERANK = True
    warm_up()
    assert ocr._query_engine is not None


def test_words_on_the_pack_fix_a_look_alike_the_photo_alone_gets_wrong(api_client, packs, rerank_on) -> None:
    # The MANGO carton's band with ZEBRA printed on it: to the eye of the model, the MANGO product.
    query = pack("ZEBRA", PACK)
    rerank_on.SEARCH_TEXT_RERANK = False
    visual = _search(api_client, query)
    assert _skus(visual)[0] == "MNG", "precondition: the look alone picks the other pack"
    assert visual["reranked_by_text"] is False and visual["words_read"] is None
    assert visual["timings_ms"]["read_text"] == 0.0

    rerank_on.SEARCH_TEXT_RERANK = True
    body = _search(api_client, query)
    assert _skus(body)[0] == "ZBR"
    assert body["reranked_by_text"] is True
    assert "ZEBRA" in " ".join(body["words_read"]).upper()
    assert body["timings_ms"]["read_text"] > 0
    # The thresholds were calibrated on the visual order: a re-ranked answer carries no verdict.
    assert all(r["match"] is None for r in body["results"])


def test_a_photo_without_words_keeps_its_visual_order(api_client, packs, rerank_on) -> None:
    query = pack(None, PACK)
    rerank_on.SEARCH_TEXT_RERANK = False
    visual = _skus(_search(api_client, query))
    rerank_on.SEARCH_TEXT_RERANK = True
    body = _search(api_client, query)
    assert _skus(body) == visual
    assert body["reranked_by_text"] is False
    assert body["words_read"] == []  # read, nothing found


def test_a_reading_past_its_budget_answers_the_visual_order(api_client, packs, rerank_on) -> None:
    ocr.query_engine()  # built beforehand: the budget below is the reading's alone
    rerank_on.SEARCH_TEXT_BUDGET_MS = 1
    body = _search(api_client, pack("ZEBRA", PACK))
    assert _skus(body)[0] == "MNG"
    assert body["reranked_by_text"] is False and body["words_read"] is None


def test_a_clear_cut_answer_is_not_read(api_client, packs, rerank_on) -> None:
    rerank_on.SEARCH_TEXT_MARGIN = 0.0  # no lead is below 0: every answer is clear-cut
    body = _search(api_client, pack("ZEBRA", PACK))
    assert body["reranked_by_text"] is False and body["words_read"] is None
    assert body["timings_ms"]["read_text"] == 0.0


def test_combine_adds_the_relative_text_score_and_keeps_ties_in_visual_order() -> None:
    visual = [(1, 0.80), (2, 0.78), (3, 0.70)]
    assert combine(visual, {2: 4.0}, weight=0.05) == [2, 1, 3]  # 0.78 + 0.05 beats 0.80
    assert combine(visual, {2: 4.0}, weight=0.01) == [1, 2, 3]  # too little to overturn 0.02
    assert combine(visual, {3: 2.0, 2: 1.0}, weight=0.2) == [3, 2, 1]
    assert combine(visual, {}, weight=1.0) == [1, 2, 3]
    assert margin([Hit("a", 1, 0.9, {}), Hit("b", 2, 0.85, {})]) == pytest.approx(0.05)
    assert margin([Hit("a", 1, 0.9, {})]) == float("inf")


def test_a_trained_model_reads_by_its_own_settings(api_client, packs, rerank_on, active_model) -> None:
    # The pretrained settings (margin 1.0 in rerank_on) would read this photo; a trained model's own
    # margin of 0 calls every answer clear-cut, and its weight, not the pretrained one, re-ranks.
    from search.models import ModelKind, ModelVersion
    from search.selectors import forget_active_model

    ModelVersion.objects.filter(pk=active_model.pk).update(kind=ModelKind.TRAINED)
    forget_active_model()
    rerank_on.SEARCH_TEXT_MARGIN_TRAINED = 0.0
    body = _search(api_client, pack("ZEBRA", PACK))
    assert body["model_kind"] == "trained"
    assert body["words_read"] is None and _skus(body)[0] == "MNG"
    rerank_on.SEARCH_TEXT_MARGIN_TRAINED = 1.0
    rerank_on.SEARCH_TEXT_WEIGHT_TRAINED = 0.0  # read, but the words weigh nothing
    body = _search(api_client, pack("ZEBRA", PACK))
    assert "ZEBRA" in " ".join(body["words_read"]).upper()
    assert _skus(body)[0] == "MNG" and body["reranked_by_text"] is False
    rerank_on.SEARCH_TEXT_WEIGHT_TRAINED = 1.0
    body = _search(api_client, pack("ZEBRA", PACK))
    assert _skus(body)[0] == "ZBR" and body["reranked_by_text"] is True


def test_rerank_params_follow_the_model_kind(settings) -> None:
    from search.services.text_rerank import RerankParams, rerank_params

    settings.SEARCH_TEXT_MARGIN, settings.SEARCH_TEXT_WEIGHT, settings.SEARCH_TEXT_CANDIDATES = 0.05, 0.5, 10
    settings.SEARCH_TEXT_MARGIN_TRAINED = 0.02
    settings.SEARCH_TEXT_WEIGHT_TRAINED = 0.05
    settings.SEARCH_TEXT_CANDIDATES_TRAINED = 1  # fewer than two candidates cannot be re-ranked
    assert rerank_params("bootstrap") == RerankParams(0.05, 0.5, 10)
    assert rerank_params("trained") == RerankParams(0.02, 0.05, 2)
