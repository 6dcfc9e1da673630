"""Text handling shared by the parsers: UTF-8 line decoding of a byte stream, and cleaning values
to what the catalog can store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from catalog.feeds.errors import FeedFormatError

UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
READ_CHUNK = 64 * 1024
# The longest physical line kept whole. A longer one is a broken file (or an attack on memory), not a
# product: it is reported and skipped while the reader goes on at the next newline.
MAX_LINE_BYTES = 4 * 1024 * 1024


def check_utf8_start(head: bytes, name: str = "the feed") -> None:
    """Refuse the encodings that are recognisable from the first bytes (UTF-16/32 by BOM or by NULs).

    Raises ``FeedFormatError("unsupported_encoding")``.
    """
    for bom, encoding in _OTHER_BOMS:
        if head.startswith(bom):
            raise FeedFormatError(
                "unsupported_encoding", f"{name} is {encoding}; save or export it as UTF-8."
            )
    if b"\x00" in head[:4096]:
        raise FeedFormatError(
            "unsupported_encoding",
            f"{name} contains NUL bytes: it looks like UTF-16 without a byte order mark; export it as UTF-8.",
        )


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    # Why the line is unusable ("not valid UTF-8 ..."); text then holds a replacement-decoded copy so
    # that a CSV reader can still find where the row ends.
    problem: str | None = None


def byte_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """Physical lines of a binary stream, newline kept; None stands for a line over MAX_LINE_BYTES.

    Splitting bytes at b"\\n" is safe for UTF-8: no multi-byte sequence contains that byte.
    """
    pending = b""
    skipping = False
    while True:
        chunk = stream.read(READ_CHUNK)
        if not chunk:
            break
        pending += chunk
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            if skipping:
                skipping = False
            else:
                yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
        if len(pending) > MAX_LINE_BYTES:
            if not skipping:
                yield None
                skipping = True
            pending = b""
    if pending and not skipping:
        yield pending


def decoded_lines(stream: BinaryIO, name: str = "the feed") -> Iterator[Line]:
    """UTF-8 lines (newline kept, BOM removed) numbered from 1. A line that is not UTF-8 comes with a
    ``problem``; UTF-16/32 files raise ``FeedFormatError("unsupported_encoding")`` at the first line."""
    for number, raw in enumerate(byte_lines(stream), start=1):
        if raw is None:
            yield Line(number, "\n", f"the line is longer than {MAX_LINE_BYTES:,} bytes")
            continue
        if number == 1:
            check_utf8_start(raw, name)
            raw = raw.removeprefix(UTF8_BOM)
        try:
            yield Line(number, raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problem = (
                f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line); "
                "feeds must be UTF-8"
            )
            yield Line(number, raw.decode("utf-8", errors="replace"), problem)


def clean_text(value: str | None) -> str:
    """Strip, and drop what PostgreSQL cannot store in text (NUL, unpaired surrogates)."""
    if not value:
        return ""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # only lone surrogates fail to encode
            value = value.encode("utf-8", errors="ignore").decode("utf-8")
    return value.strip()


def one_line(value: str) -> str:
    """Titles, brands and categories are one line: tabs, newlines and runs of spaces become one space."""
    return " ".join(value.split())


def clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit].rstrip()


def clip_path(value: str, limit: int) -> str:
    """Fit a category path "A > B > C" into ``limit`` by dropping leading (broadest) segments, so the
    leaf, which is what tells products apart, survives; a leaf alone too long is cut."""
    if len(value) <= limit:
        return value
    parts = [p.strip() for p in value.split(">") if p.strip()]
    while len(parts) > 1 and len(" > ".join(parts)) > limit:
        parts.pop(0)
    return clip(" > ".join(parts), limit)


def normalise_path(value: str) -> str:
    """ "A>B >  C" -> "A > B > C" (feeds vary the spacing; the catalog filters on exact strings)."""
    if ">" not in value:
        return value.strip()
    return " > ".join(p.strip() for p in value.split(">") if p.strip())
