"""Words for matching text: what the OCR read on a pack, a product's title, a shopper's query.

Plain Python, no Django. Quantities are kept whole: on packs of milk that differ only by fat, "1,5%"
and "3%" are the words that tell them apart (the OCR probe on the Grocery photos: milk 0.43 -> 0.52
once "N%" and numbers with units were tokens), so "1,5 %" becomes the one token "1.5%" and
"500 ml" becomes "500ml".
"""

from __future__ import annotations

import re
import unicodedata
import zlib

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


# --- terms for the text index -------------------------------------------------------------------
# A product's text and a shopper's query become the same kind of sparse vector: each token a term,
# and each word's character trigrams terms too, so "yoghrt" still shares most of its trigrams with
# "yoghurt". Measured over the 81 Grocery products (name + description), queried with their names
# with one random typo: the product in the top 5 for 0.654 of queries with words alone, 0.975 with
# these trigrams (typed names exactly: top-1 0.951, top-5 1.000). The engine weighs each term by its
# IDF. Trigrams at a fixed weight per trigram (0.1 to 1.0 of a word) measured the same or lower.
TRIGRAM_MIN_WORD = 4  # shorter words have one or two trigrams, which add noise more than recall
# BM25's term-frequency saturation (k1; no length normalisation: a product's text is short, and its
# length says little about how relevant it is): the fifth "juice" on a pack adds little.
K1 = 1.2
# A word's trigrams together weigh about as much as the word itself, so a whole-word match still
# beats a trigram-only one, and a long word does not outweigh a short one by its trigram count.
TRIGRAM_SHARE = 1.0


def trigrams(word: str) -> list[str]:
    padded = f"^{word}$"  # the word's start and end are trigrams too: "^yo", "rt$"
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


def term_id(term: str) -> int:
    """A stable id below 2**32 for a term (the same in every process and release)."""
    return zlib.crc32(term.encode("utf-8"))


def terms(text: str) -> dict[int, float]:
    """The weighted terms of ``text``: {term id: weight}, words as "w:<token>" and trigrams as
    "t:<abc>", each weight BM25-saturated. Empty for a text without tokens."""
    counts: dict[str, float] = {}
    for token in tokenize(text):
        counts["w:" + token] = counts.get("w:" + token, 0.0) + 1.0
        if len(token) >= TRIGRAM_MIN_WORD and token.isalpha():
            grams = trigrams(token)
            share = TRIGRAM_SHARE / len(grams)
            for gram in grams:
                counts["t:" + gram] = counts.get("t:" + gram, 0.0) + share
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        key = term_id(term)
        # A crc32 collision merges two terms: rare, and it only adds their weights.
        weights[key] = weights.get(key, 0.0) + tf * (K1 + 1) / (tf + K1)
    return weights
