"""Request bodies the catalog API reads as streams rather than parsing them into memory."""

from __future__ import annotations

from typing import IO, Any

from rest_framework.parsers import BaseParser


class NdjsonParser(BaseParser):
    """Newline-delimited JSON (one product per line), handed to the view as the raw body stream: the
    sync stores it in chunks under its own size cap and parses it later, off the request."""

    media_type = "application/x-ndjson"

    # DRF makes whatever parse() returns the request's data; the stubs allow only a mapping there.
    def parse(  # type: ignore[override]
        self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None
    ) -> IO[Any]:
        return stream
