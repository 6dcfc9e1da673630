from __future__ import annotations

import pytest

from ml.text_tokens import tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Arla Mellanmjölk 1,5%", ["arla", "mellanmjölk", "1.5%"]),
        ("fett 1,5 %", ["fett", "1.5%"]),
        ("3% fat", ["3%", "fat"]),
        ("500 ml", ["500ml"]),
        ("1L", ["1l"]),
        ("0.5 kg", ["0.5kg"]),
        ("2 st", ["2st"]),
        ("10 stycken", ["10", "stycken"]),  # a unit only when the word ends there
        ("1000g", ["1000g"]),
        ("Bravo Äppeljuice", ["bravo", "äppeljuice"]),
        ("HAVRE-GURT", ["havre", "gurt"]),
        ("LY! I a", ["ly"]),
        ("ＡＬＰＲＯ", ["alpro"]),  # full-width letters folded
        ("", []),
        ("1000 1,5", ["1000", "1.5"]),
    ],
)
def test_tokenize(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_quantities_differ_where_the_products_do() -> None:
    assert set(tokenize("Mellanmjölk 1,5%")) != set(tokenize("Mellanmjölk 3%"))
    assert set(tokenize("Arla 1,5 %")) == set(tokenize("ARLA 1.5%"))
