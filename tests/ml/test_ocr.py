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
