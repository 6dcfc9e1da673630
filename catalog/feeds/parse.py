"""The one entry point: a byte stream and its format in, ``FeedProduct``/``FeedError`` records out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from catalog.feeds.errors import FeedFormatError
from catalog.feeds.image_refs import web_url
from catalog.feeds.manifest import parse_manifest
from catalog.feeds.merchant_tsv import parse_merchant_tsv
from catalog.feeds.merchant_xml import parse_merchant_xml
from catalog.feeds.records import FEED_FORMATS, FeedFormat, FeedRecord
from catalog.feeds.shopify import parse_shopify_csv


def parse_feed(
    stream: BinaryIO,
    format: FeedFormat,
    *,
    base_dir: Path | None = None,
    allow_local_images: bool = False,
    store_url: str | None = None,
    default_currency: str | None = None,
    now: datetime | None = None,
) -> Iterator[FeedRecord]:
    """Parse a feed lazily, one record at a time, in bounded memory.

    Records come in feed order, with one exception: the product of a Merchant Center item group
    comes after the feed's last item (a later item could still join it), groups in the order of
    their first items. A fatal ``FeedError``, if any, is the last record.

    ``stream``: a binary file-like object read with ``read(n)`` only (a file, an HTTP response);
    the caller opens and closes it. ``format``: from ``detect_format``/``sniff_format``.
    ``base_dir``/``allow_local_images``: JSONL only; local image paths are refused unless allowed,
    and then resolved inside ``base_dir`` (the manifest's folder). ``store_url``: Shopify only, the
    shop's address for product links. ``default_currency``: the currency of prices that name none
    (Shopify's always). ``now``: the instant sale windows are judged at (default: now, UTC).

    Raises ``FeedFormatError("invalid_option")`` at once for bad arguments; everything wrong inside
    the feed comes out as ``FeedError`` records instead (see ``catalog.feeds.records``).
    """
    if format not in FEED_FORMATS:
        raise FeedFormatError(
            "invalid_option", f"unknown feed format {format!r}; one of {', '.join(FEED_FORMATS)}."
        )
    if allow_local_images and base_dir is None:
        raise FeedFormatError("invalid_option", "allow_local_images needs base_dir, the manifest's folder.")
    if base_dir is not None and not Path(base_dir).is_dir():
        raise FeedFormatError("invalid_option", f"base_dir {base_dir} is not a folder.")
    if store_url is not None and web_url(store_url) is None:
        raise FeedFormatError("invalid_option", f"store_url {store_url!r} is not an http(s) URL.")
    if default_currency is not None:
        if len(default_currency) != 3 or not default_currency.isalpha():
            raise FeedFormatError("invalid_option", "default_currency must be a 3-letter ISO 4217 code.")
        default_currency = default_currency.upper()
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise FeedFormatError("invalid_option", "now must be timezone-aware.")

    if format == "merchant_xml":
        return parse_merchant_xml(stream, default_currency=default_currency, now=now)
    if format == "merchant_tsv":
        return parse_merchant_tsv(stream, default_currency=default_currency, now=now)
    if format == "shopify_csv":
        return parse_shopify_csv(stream, store_url=store_url, default_currency=default_currency)
    return parse_manifest(
        stream,
        base_dir=Path(base_dir) if base_dir is not None else None,
        allow_local_images=allow_local_images,
        default_currency=default_currency,
    )
