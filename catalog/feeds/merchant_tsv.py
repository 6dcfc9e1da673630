"""Merchant Center's tab-separated text feeds: a header row of attribute names ("id", "g:id" or
"image link" all work), then one item per row. A repeated attribute is either a repeated column or
one cell of comma-separated values (additional_image_link)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from catalog.feeds.delimited import delimited_rows
from catalog.feeds.errors import FeedFormatError
from catalog.feeds.merchant import Fields, MerchantAssembler, field_name
from catalog.feeds.records import FeedError, FeedRecord


def parse_merchant_tsv(
    stream: BinaryIO, *, default_currency: str | None, now: datetime
) -> Iterator[FeedRecord]:
    assembler = MerchantAssembler(unit="line", default_currency=default_currency, now=now)
    header: list[str] | None = None
    items = 0
    line = 0
    fatal: FeedError | None = None
    try:
        for row in delimited_rows(stream, delimiter="\t"):
            if header is None:
                if row.problem:
                    fatal = FeedError(
                        row.line, row.code or "bad_row", f"the header row: {row.problem}.", fatal=True
                    )
                    break
                header = [field_name(cell) for cell in row.cells]
                if "id" not in header:
                    fatal = FeedError(
                        row.line, "missing_column",
                        "the header row has no 'id' column; is this a tab-separated Merchant Center feed?",
                        fatal=True,
                    )  # fmt: skip
                    break
                continue
            items += 1
            line = row.line
            if row.problem:
                yield FeedError(row.line, row.code or "bad_row", f"{row.problem}.")
                continue
            extra = row.cells[len(header) :]
            if any(cell.strip() for cell in extra):
                yield FeedError(
                    row.line, "bad_row",
                    f"{len(row.cells)} cells but the header names {len(header)} (a tab inside a value?).",
                )  # fmt: skip
                continue
            fields: Fields = {}
            for name, cell in zip(header, row.cells, strict=False):
                fields.setdefault(name, []).append(cell)
            yield from assembler.add(fields, row.line)
    except FeedFormatError as exc:
        fatal = FeedError(1, exc.code, exc.message, fatal=True)
    except OSError as exc:
        fatal = FeedError(
            line + 1, "read_error", f"reading the feed failed after line {line}: {exc}.", fatal=True
        )
    if fatal is None and items == 0:
        fatal = FeedError(1, "no_items", "the feed has no item rows.", fatal=True)
    yield from assembler.finish()
    if fatal is not None:
        yield fatal
