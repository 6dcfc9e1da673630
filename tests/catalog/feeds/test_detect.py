"""Format detection, and parsing straight from an HTTP response stream served on loopback."""

from __future__ import annotations

import gzip
import http.server
import io
import threading
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import pytest

from catalog.feeds import FeedFormatError, FeedProduct, detect_format, parse_feed, sniff_format
from tests.catalog.feeds.helpers import FIXTURES, NOW, products

RSS = (FIXTURES / "merchant_rss.xml").read_bytes()
SHOPIFY = (FIXTURES / "shopify_products.csv").read_bytes()


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (RSS, None, "merchant_xml"),
        (b"\xef\xbb\xbf  \n<rss version='2.0'>", "feed", "merchant_xml"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom">', None, "merchant_xml"),
        (b"id\ttitle\tprice\n1\tA\t1 USD\n", None, "merchant_tsv"),
        (b"g:id\tg:title\n", "https://shop.example/feed?format=txt", "merchant_tsv"),
        (b"\xef\xbb\xbfID\tTitle\n", None, "merchant_tsv"),
        (SHOPIFY, None, "shopify_csv"),
        (b"Handle,Title\nmug,Mug\n", "export.txt", "shopify_csv"),
        (b'{"sku": "A", "title": "B"}\n', None, "jsonl"),
        (b"sku;title\n", "https://shop.example/feeds/products.tsv?token=1", "merchant_tsv"),
        (b"anything", "catalog.JSONL", "jsonl"),
    ],
)
def test_detect_format(head: bytes, name: str | None, expected: str):
    assert detect_format(head, name) == expected


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (gzip.compress(RSS), "compressed"),
        (b"PK\x03\x04rest", "compressed"),
        ("\ufeffid\ttitle\n".encode("utf-16"), "unsupported_encoding"),
        ("id\ttitle\n".encode("utf-16-le"), "unsupported_encoding"),
        (b"<!DOCTYPE html><html><body>Login</body></html>", "unknown_format"),
        (b"sku;title\nA;B\n", "unknown_format"),
    ],
)
def test_detect_format_refuses(head: bytes, code: str):
    with pytest.raises(FeedFormatError) as caught:
        detect_format(head, "feed")
    assert caught.value.code == code


def test_parse_feed_refuses_bad_options(tmp_path):
    for options in (
        {"format": "excel"},
        {"format": "shopify_csv", "store_url": "shop.example"},
        {"format": "shopify_csv", "default_currency": "EURO"},
        {"format": "jsonl", "base_dir": tmp_path / "missing"},
        {"format": "merchant_xml", "now": NOW.replace(tzinfo=None)},
    ):
        with pytest.raises(FeedFormatError) as caught:
            parse_feed(io.BytesIO(b""), **options)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_option"


class _FeedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Sent in small chunks so the parser sees the body arrive piece by piece.
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for start in range(0, len(RSS), 700):
            piece = RSS[start : start + 700]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def feed_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feeds/google"
    finally:
        server.shutdown()
        server.server_close()


def test_sniff_and_parse_an_http_response_stream(feed_url: str):
    with urllib.request.urlopen(feed_url, timeout=10) as response:
        fmt, stream = sniff_format(response, feed_url)
        assert fmt == "merchant_xml"
        streamed = list(parse_feed(stream, fmt, now=NOW))
    assert streamed == list(parse_feed(io.BytesIO(RSS), "merchant_xml", now=NOW))
    tee = products(streamed)["TEE"]
    assert isinstance(tee, FeedProduct) and tee.price == Decimal("19.50")
