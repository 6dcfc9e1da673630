"""The OCR gateway (ml/ocr.py) with the real engine: drawn text is read with confidences and boxes,
the engine builds and reads with the network cut off, and a reading past its budget stops."""

from __future__ import annotations

import socket

import pytest

from ml import ocr
from ml.text_tokens import tokenize
from tests.fixtures.text_images import text_image

pytestmark = pytest.mark.slow


def test_drawn_text_is_read_with_confidence_and_boxes() -> None:
    image = text_image(["OAT MILK 1,5%", "Havre 500 ml"])
    words = ocr.read_words(image)
    tokens = tokenize(" ".join(word.text for word in words))
    assert {"oat", "milk", "1.5%", "havre", "500ml"} <= set(tokens), words
    for word in words:
        assert 0.0 < word.confidence <= 1.0
        assert len(word.box) == 4
        assert all(0 <= x <= image.width and 0 <= y <= image.height for x, y in word.box)
    first = next(word for word in words if "OAT" in word.text)
    second = next(word for word in words if "500" in word.text)
    assert max(y for _, y in first.box) <= min(y for _, y in second.box) + 5  # the lines in their places


def test_the_engine_builds_and_reads_with_no_network(monkeypatch) -> None:
    """Its models ship in the wheel: nothing may connect or resolve a name while it loads and reads."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    engine = ocr._build()  # a fresh engine, not the process's one that an earlier test may have built
    result = engine(text_image(["LOOKALIKE"]).convert("RGB"))
    assert result.txts and "LOOKALIKE" in "".join(result.txts)
    assert attempts == []


def test_missing_models_are_refused_instead_of_downloaded(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(ocr, "models_dir", lambda: tmp_path)
    with pytest.raises(ocr.OcrUnavailable, match="missing"):
        ocr._build()


def test_a_reading_past_its_budget_stops() -> None:
    with pytest.raises(ocr.OcrTimeout):
        ocr.read_words(text_image(["SLOW"] * 6), budget_s=0.001)


def test_the_query_profile_reads_the_largest_lines_and_never_queues_behind_busy_readers(monkeypatch) -> None:
    import threading

    image = text_image(["OAT MILK 1,5%", "Havre 500 ml"])
    words = ocr.read_query_words(image, budget_s=30)  # the real engine, the query profile
    assert {"oat", "milk"} <= set(tokenize(" ".join(w.text for w in words))), words

    # Every reader held by a late reading: the next query is refused at once, not queued.
    release = threading.Event()
    monkeypatch.setattr(ocr, "_run", lambda pixels, query: release.wait(30) and [])
    for _ in range(ocr.QUERY_READERS):
        with pytest.raises(ocr.OcrTimeout):
            ocr.read_query_words(image, budget_s=0.01)
    with pytest.raises(ocr.OcrTimeout, match="busy"):
        ocr.read_query_words(image, budget_s=30)
    release.set()  # the late readings end and free their readers
    ocr._query_executor.submit(lambda: None).result(timeout=30)
    monkeypatch.undo()
    for _ in range(50):  # the slots come back as the late readings' callbacks run
        if ocr._query_slots.acquire(timeout=0.1):
            ocr._query_slots.release()
            break
    assert ocr.read_query_words(image, budget_s=30)


@pytest.mark.parametrize("query", [False, True])
def test_the_engines_sessions_do_not_spin_between_readings(query: bool) -> None:
    # A spinning intra-op thread would hold a core after each reading, beside the next search.
    engine = ocr._build(query=query)
    engine(text_image(["LOOKALIKE"]).convert("RGB"))  # the sessions load on first use
    for stage in (engine.text_det, engine.text_rec):
        options = stage.session.session.get_session_options()
        assert options.get_session_config_entry(ocr.SPINNING_KEY) == "0"
