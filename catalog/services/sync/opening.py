"""Opening what a run reads: a local file, a URL (through the guarded fetcher), or a pushed body in
storage; and deciding which parser reads it.

Only a local JSONL manifest may name local image files, and only inside its own folder or the
images root the operator names on the command line (``catalog.feeds.resolve_local_image``: no ``..``,
no absolute paths, no symlinks leading out). A feed that came from a URL or a push names images by URL
alone: it can never make the server read its own files.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from django.conf import settings
from django.core.files.storage import default_storage

from catalog.feeds import FeedFormat, FeedFormatError, sniff_format
from catalog.fetching import FetchPolicy, open_url, policy_from_settings
from catalog.models import FeedChoice

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "text/tab-separated-values, text/csv, application/x-ndjson, text/plain;q=0.5, */*;q=0.1"
)


@dataclass
class OpenedFeed:
    """A feed ready to parse (``stream`` is None when a conditional request found it unchanged)."""

    format: FeedFormat | None
    stream: BinaryIO | None
    base_dir: Path | None = None
    allow_local_images: bool = False
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.stream is None


def is_url(location: str) -> bool:
    return location.lower().startswith(("http://", "https://"))


def feed_policy() -> FetchPolicy:
    """The fetch policy for feeds: the image guard's addresses and hosts, a feed-sized byte cap and
    time limit (a feed is read while it is parsed, so the limit covers the whole sync's reading)."""
    return policy_from_settings(
        max_bytes=settings.CATALOG_SYNC_MAX_FEED_BYTES, total_timeout_s=settings.CATALOG_SYNC_FEED_TIMEOUT_S
    )


def resolve_format(requested: str, stream: BinaryIO, name: str) -> tuple[FeedFormat, BinaryIO]:
    """The parser for ``requested`` ("auto", "merchant", "shopify", "jsonl") and a stream that starts
    at the feed's first byte again. Raises FeedFormatError (a compressed file, an HTML page, a
    "merchant" feed that is something else)."""
    if requested == FeedChoice.SHOPIFY:
        return "shopify_csv", stream
    if requested == FeedChoice.JSONL:
        return "jsonl", stream
    detected, replay = sniff_format(stream, name)
    if requested == FeedChoice.MERCHANT and not detected.startswith("merchant"):
        raise FeedFormatError(
            "unknown_format", f"{name} is not a Merchant Center feed (it reads as {detected})."
        )
    return detected, replay


@contextmanager
def open_feed(
    location: str,
    requested_format: str,
    *,
    upload: str = "",
    etag: str | None = None,
    last_modified: str | None = None,
    images_root: Path | None = None,
) -> Iterator[OpenedFeed]:
    """Open the run's feed for reading; closed on exit. Raises FetchError (a URL), FeedFormatError,
    or OSError (a file that cannot be read). A local manifest's images resolve inside ``images_root``
    (default: the manifest's own folder)."""
    with ExitStack() as stack:
        if upload:
            stored = stack.enter_context(default_storage.open(upload, "rb"))
            # Storage's File proxies a binary file opened "rb"; the parsers only read() it.
            fmt, stream = resolve_format(FeedChoice.JSONL, cast(BinaryIO, stored), "the pushed feed")
            yield OpenedFeed(fmt, stream)
            return
        if is_url(location):
            response = stack.enter_context(
                open_url(location, feed_policy(), etag=etag, last_modified=last_modified, accept=FEED_ACCEPT)
            )
            if response.not_modified:
                yield OpenedFeed(None, None, etag=response.etag, last_modified=response.last_modified)
                return
            # A FetchStream is a raw binary reader (io.RawIOBase) whose read() returns bytes, never None
            # (it blocks); the parsers only read() it.
            fmt, stream = resolve_format(requested_format, cast(BinaryIO, response), location)
            yield OpenedFeed(fmt, stream, etag=response.etag, last_modified=response.last_modified)
            return
        path = Path(location)
        raw = stack.enter_context(path.open("rb"))
        fmt, stream = resolve_format(requested_format, raw, path.name)
        local = fmt == "jsonl"
        root = (images_root or path.parent).resolve()
        yield OpenedFeed(fmt, stream, base_dir=root if local else None, allow_local_images=local)
