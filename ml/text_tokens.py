"""Words for matching text: what the OCR read on a pack, a product's title, a shopper's query.

Plain Python, no Django. Quantities are kept whole: on packs of milk that differ only by fat, "1,5%"
and "3%" are the words that tell them apart (the OCR probe on the Grocery photos: milk 0.43 -> 0.52
once "N%" and numbers with units were tokens), so "1,5 %" becomes the one token "1.5%" and
"500 ml" becomes "500ml".
"""

from __future__ import annotations

import re
import unicodedata

# Units printed on groceries (metric, Nordic "st" for pieces, and a few imperial ones).
UNITS = ("kg", "mg", "g", "ml", "cl", "dl", "l", "st", "pcs", "oz", "lb", "kcal", "kj")
_UNIT = "|".join(sorted(UNITS, key=len, reverse=True))
_TOKEN = re.compile(
    rf"(?P<qty>\d+(?:[.,]\d+)?)\s?(?P<unit>%|(?:{_UNIT})(?![^\W\d_]))"  # 1,5% · 500 ml · 2x (not "2go")
    r"|(?P<num>\d+(?:[.,]\d+)?)"  # a bare number: a year, a size code
    r"|(?P<word>[^\W\d_]+)"  # letters only (any script: å, ä, ö), so "-GURT" and "Oat-milk" split
)
MIN_WORD = 2  # single letters are mostly noise from the OCR (a stray "I" for a bar, "a" in a logo)


def normalize(text: str) -> str:
    # NFKC folds full-width digits and ligatures; case carries nothing for matching.
    return unicodedata.normalize("NFKC", text).casefold()


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` in order (repeats kept): lower-case words of 2+ letters, numbers, and
    quantities with their unit as one token, the decimal comma written as a point."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(normalize(text)):
        if match["qty"] is not None:
            tokens.append(match["qty"].replace(",", ".") + match["unit"])
        elif match["num"] is not None:
            tokens.append(match["num"].replace(",", "."))
        elif len(match["word"]) >= MIN_WORD:
            tokens.append(match["word"])
    return tokens
