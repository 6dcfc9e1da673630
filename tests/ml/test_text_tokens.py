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


def test_terms_are_stable_ids_with_saturated_weights() -> None:
    from ml.text_tokens import K1, term_id, terms

    weights = terms("Juice juice JUICE 500 ml")
    # One word three times weighs more than once, but less than three times (BM25 saturation).
    juice = weights[term_id("w:juice")]
    assert juice == pytest.approx(3 * (K1 + 1) / (3 + K1))
    assert 1.0 < juice < 3.0
    assert weights[term_id("w:500ml")] == pytest.approx(1.0)
    # The same id in every process and release: an index built yesterday is queried today.
    assert term_id("w:juice") == 2855237454
    assert all(0 <= key < 2**32 for key in weights)
    assert terms("") == {} and terms("- , .") == {}


def test_a_typo_still_shares_most_trigrams() -> None:
    from ml.text_tokens import terms, trigrams

    assert trigrams("milk") == ["^mi", "mil", "ilk", "lk$"]
    right, typo, other = terms("yoghurt"), terms("yoghrt"), terms("oatmeal")
    shared = sum(min(right[k], typo[k]) for k in right.keys() & typo.keys())
    unrelated = sum(min(right[k], other[k]) for k in right.keys() & other.keys())
    assert shared > 0.3 and unrelated == 0.0
    # Quantities and short words get no trigrams: "1.5%" is one term, not "^1.", "1.5", ...
    assert len(terms("1,5%")) == 1 and len(terms("soy")) == 1
