"""Prices as feeds write them ("15.00 USD", "USD 15.00", "15 USD", "15,00 EUR", "1,299.00 USD") to
Decimal + ISO 4217 code, and Merchant Center's sale windows.

Separators, decided once: with both "," and "." present, the last one is the decimal mark and the
other groups thousands ("1.299,00", "1,299.00"). With one kind used more than once it groups
thousands ("1,299,000"). A single "." is the decimal mark. A single "," is the decimal mark unless
exactly three digits follow it ("15,00" and "15,5" are decimals, "1,299" is 1299): feeds write
cents with two digits, and a comma before three digits is a thousands group. Amounts are rounded to
cents (the catalog's column) and must lie in 0..9,999,999,999.99. Currency symbols ("$") are refused:
"$" alone does not say which dollar.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NamedTuple

_PRICE = re.compile(r"(?:(?P<pre>[A-Za-z]{3})\s*)?(?P<amount>\d[\d.,]*)\s*(?P<post>[A-Za-z]{3})?")
CENT = Decimal("0.01")
PRICE_LIMIT = Decimal("1e10")


class PriceError(ValueError):
    pass


class Money(NamedTuple):
    amount: Decimal
    currency: str | None


def _grouped(parts: list[str]) -> bool:
    return 1 <= len(parts[0]) <= 3 and all(len(p) == 3 for p in parts[1:])


def _amount(text: str) -> Decimal:
    commas, dots = text.count(","), text.count(".")
    if commas and dots:
        decimal_mark = "," if text.rfind(",") > text.rfind(".") else "."
        group_mark = "." if decimal_mark == "," else ","
        whole, _, fraction = text.rpartition(decimal_mark)
        if decimal_mark in whole or not fraction or not _grouped(whole.split(group_mark)):
            raise PriceError(f"cannot read the amount {text!r}")
        text = whole.replace(group_mark, "") + "." + fraction
    elif commas > 1 or dots > 1:
        mark = "," if commas else "."
        parts = text.split(mark)
        if not _grouped(parts):
            raise PriceError(f"cannot read the amount {text!r}")
        text = "".join(parts)
    elif commas == 1:
        whole, fraction = text.split(",")
        if not fraction:
            raise PriceError(f"cannot read the amount {text!r}")
        text = (
            whole + fraction if len(fraction) == 3 and _grouped([whole, fraction]) else f"{whole}.{fraction}"
        )
    elif text.endswith("."):
        raise PriceError(f"cannot read the amount {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise PriceError(f"cannot read the amount {text!r}") from exc


def parse_price(text: str, *, default_currency: str | None = None) -> Money:
    """Amount and currency of a feed's price text; the currency is ``default_currency`` (which may be
    None) when the text names none. Raises ``PriceError`` with a one-line reason."""
    match = _PRICE.fullmatch(text.strip())
    if match is None:
        raise PriceError(f"{text.strip()!r} is not a price like '15.00 USD'")
    if match["pre"] and match["post"]:
        raise PriceError(f"{text.strip()!r} names two currencies")
    currency = (match["pre"] or match["post"] or default_currency or "").upper() or None
    amount = _amount(match["amount"])
    if amount >= PRICE_LIMIT:
        raise PriceError(f"{text.strip()!r} is over the limit of 9,999,999,999.99")
    return Money(amount.quantize(CENT, rounding=ROUND_HALF_UP), currency)


def _instant(text: str, *, end: bool) -> datetime:
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PriceError(f"{text!r} is not an ISO 8601 date or date-time") from exc
    if "T" not in text and " " not in text:
        # A bare date: Merchant Center runs the sale from the start of the first day to the end of
        # the last one.
        value = datetime.combine(value.date(), time.max if end else time.min)
    if value.tzinfo is None:  # Merchant Center reads a missing time zone as UTC
        value = value.replace(tzinfo=UTC)
    return value


def parse_sale_window(text: str) -> tuple[datetime, datetime]:
    """``"2016-02-24T13:00-0800/2016-02-29T15:30-0800"`` (time and zone optional) -> (start, end)."""
    start_text, slash, end_text = text.partition("/")
    if not slash:
        raise PriceError(f"{text.strip()!r} is not a date range 'start/end'")
    start, end = _instant(start_text, end=False), _instant(end_text, end=True)
    if end < start:
        raise PriceError(f"{text.strip()!r} ends before it starts")
    return start, end


def sale_in_effect(window: tuple[datetime, datetime] | None, now: datetime) -> bool:
    if window is None:
        return True
    start, end = window
    return start <= now <= end


def money_text(amount: Decimal) -> str:
    return f"{amount:.2f}"
