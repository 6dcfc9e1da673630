"""Streaming parsers for the catalog feeds shops already have: Google Merchant Center (RSS/Atom XML
and tab-separated text), Shopify's product CSV export, and our own JSON Lines manifest.

Pure and Django-free: bytes in, ``FeedProduct``/``FeedError`` records out; no database, no
downloads, no file reads except a manifest's local images when the caller allows them.

    fmt, stream = sniff_format(response, url)
    for record in parse_feed(stream, fmt, store_url=..., default_currency="EUR"):
        ...
"""

from catalog.feeds.detect import SNIFF_BYTES, detect_format, sniff_format
from catalog.feeds.errors import FeedFormatError, LocalImageRejected
from catalog.feeds.image_refs import resolve_local_image
from catalog.feeds.parse import parse_feed
from catalog.feeds.records import FEED_FORMATS, FeedError, FeedFormat, FeedImage, FeedProduct, FeedRecord

__all__ = [
    "FEED_FORMATS",
    "SNIFF_BYTES",
    "FeedError",
    "FeedFormat",
    "FeedFormatError",
    "FeedImage",
    "FeedProduct",
    "FeedRecord",
    "LocalImageRejected",
    "detect_format",
    "parse_feed",
    "resolve_local_image",
    "sniff_format",
]
