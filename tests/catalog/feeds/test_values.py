"""Value parsing shared by every format: prices, sale windows, HTML descriptions, category paths."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from catalog.feeds.html_text import html_to_text
from catalog.feeds.prices import PriceError, parse_price, parse_sale_window, sale_in_effect
from catalog.feeds.text import clip_path


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("15.00 USD", "15.00", "USD"),
        ("15 USD", "15.00", "USD"),
        ("USD 15.00", "15.00", "USD"),
        ("15,00 EUR", "15.00", "EUR"),
        ("15,5 EUR", "15.50", "EUR"),
        ("1,299 USD", "1299.00", "USD"),
        ("1,299.99 usd", "1299.99", "USD"),
        ("1.299,99 EUR", "1299.99", "EUR"),
        ("1,234,567 JPY", "1234567.00", "JPY"),
        ("0.005 USD", "0.01", "USD"),
        ("  42.5GBP ", "42.50", "GBP"),
        ("0 USD", "0.00", "USD"),
    ],
)
def test_prices(text: str, amount: str, currency: str):
    assert parse_price(text) == (Decimal(amount), currency)


def test_a_price_without_currency_takes_the_default():
    assert parse_price("19.90", default_currency="CHF") == (Decimal("19.90"), "CHF")
    assert parse_price("19.90") == (Decimal("19.90"), None)


@pytest.mark.parametrize(
    "text",
    ["", "USD", "$15", "15 $", "-5 USD", "15.00.00 USD", "1,2,3 USD", "15. USD", "15, USD", "USD 15 EUR",
     "15 dollars", "1e5 USD", "NaN USD", "99999999999 USD", "1,23.45 USD"],
)  # fmt: skip
def test_bad_prices(text: str):
    with pytest.raises(PriceError):
        parse_price(text)


def test_sale_windows():
    start, end = parse_sale_window("2016-02-24T13:00-0800/2016-02-29T15:30-0800")
    assert start == datetime(2016, 2, 24, 21, 0, tzinfo=UTC) and end == datetime(
        2016, 2, 29, 23, 30, tzinfo=UTC
    )
    # Dates alone run from the first day's start to the last day's end, in UTC.
    window = parse_sale_window("2026-11-01/2026-11-30")
    assert sale_in_effect(window, datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert not sale_in_effect(window, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    assert not sale_in_effect(window, datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    assert sale_in_effect(None, datetime(2026, 1, 1, tzinfo=UTC))
    for bad in ("2026-11-01", "2026-11-30/2026-11-01", "soon/later"):
        with pytest.raises(PriceError):
            parse_sale_window(bad)


def test_html_to_text():
    html = (
        "<div><h3>Care</h3><p>Wash at 30&deg;C &amp; dry flat.<br>Do not   iron.</p>"
        "<script>track('x')</script><style>p{color:red}</style>"
        "<ul><li>100% wool</li><li>Made in <a href='#'>Portugal</a></li></ul>size < 10 & > 2</div>"
    )
    assert (
        html_to_text(html)
        == "Care\nWash at 30°C & dry flat.\nDo not iron.\n100% wool\nMade in Portugal\nsize < 10 & > 2"
    )
    assert html_to_text("Plain   text") == "Plain text"
    assert html_to_text("<p>unclosed <b>bold") == "unclosed bold"


def test_category_paths_keep_their_leaf():
    path = "Home & Garden > Kitchen & Dining > Kitchen Tools & Utensils > Kitchen Knives > Chef's Knives"
    assert clip_path(path, 120) == path
    assert clip_path(path, 50) == "Kitchen Knives > Chef's Knives"
    assert clip_path("X" * 130, 120) == "X" * 120
