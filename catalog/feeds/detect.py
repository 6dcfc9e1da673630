"""Which parser a feed needs, from its first bytes (and, failing that, its name)."""

from __future__ import annotations

import csv
import io
from pathlib import PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from catalog.feeds.errors import FeedFormatError
from catalog.feeds.merchant import field_name
from catalog.feeds.records import FeedFormat
from catalog.feeds.text import UTF8_BOM, check_utf8_start

SNIFF_BYTES = 8192
_BY_SUFFIX: dict[str, FeedFormat] = {
    ".xml": "merchant_xml",
    ".rss": "merchant_xml",
    ".atom": "merchant_xml",
    ".tsv": "merchant_tsv",
    ".txt": "merchant_tsv",
    ".csv": "shopify_csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def detect_format(first_bytes: bytes, filename_or_url: str | None = None) -> FeedFormat:
    """The feed's format, from its content first (URLs often carry no telling name), from the name's
    suffix otherwise. Give at least the first line (``SNIFF_BYTES`` is plenty).

    Raises ``FeedFormatError``: ``compressed`` (gzip, zip), ``unsupported_encoding`` (UTF-16/32),
    ``unknown_format`` (an HTML page, or nothing recognisable).
    """
    name = filename_or_url or "the feed"
    if first_bytes.startswith(b"\x1f\x8b") or first_bytes.startswith(b"PK\x03\x04"):
        raise FeedFormatError(
            "compressed", f"{name} is compressed (gzip or zip); give the uncompressed feed."
        )
    check_utf8_start(first_bytes, name)
    head = first_bytes.removeprefix(UTF8_BOM).lstrip()
    if head.startswith(b"<"):
        lowered = head[:1024].lower()
        if lowered.startswith((b"<!doctype html", b"<html")):
            raise FeedFormatError("unknown_format", f"{name} is an HTML page, not a product feed.")
        return "merchant_xml"
    if head.startswith(b"{"):
        return "jsonl"
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    if "\t" in first_line and "id" in {field_name(cell) for cell in first_line.split("\t")}:
        return "merchant_tsv"
    cells = next(csv.reader([first_line]), [])
    if "handle" in {cell.strip().lower() for cell in cells}:
        return "shopify_csv"
    if filename_or_url:
        try:
            path = urlsplit(filename_or_url).path if "://" in filename_or_url else filename_or_url
        except ValueError:
            path = filename_or_url
        suffix = PurePosixPath(path).suffix.lower()
        if suffix in _BY_SUFFIX:
            return _BY_SUFFIX[suffix]
    raise FeedFormatError(
        "unknown_format",
        f"{name} is not a recognised feed (Merchant Center XML or TSV, Shopify product CSV, JSON Lines).",
    )


class _Replay(io.RawIOBase):
    """The bytes already read for sniffing, then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def sniff_format(stream: BinaryIO, filename_or_url: str | None = None) -> tuple[FeedFormat, BinaryIO]:
    """``detect_format`` on a stream that cannot seek (an HTTP response): returns the format and a
    stream that yields the whole feed again, the sniffed bytes included. Raises ``FeedFormatError``."""
    head = b""
    while len(head) < SNIFF_BYTES:
        chunk = stream.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    return detect_format(head, filename_or_url), io.BufferedReader(_Replay(head, stream))
