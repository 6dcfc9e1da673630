"""Rows of a delimited text feed (TSV, CSV) from a UTF-8 byte stream, each with the line it starts
on and what is wrong with it, if anything. Quoted fields may span lines."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from catalog.feeds.text import Line, decoded_lines


@dataclass(frozen=True)
class Row:
    line: int  # where the row starts
    cells: list[str]
    problem: str | None = None  # the row cannot be used: not UTF-8, a field over the size limit
    code: str | None = None  # invalid_encoding or bad_row, with a problem


def delimited_rows(stream: BinaryIO, *, delimiter: str, name: str = "the feed") -> Iterator[Row]:
    """Non-blank rows in order. ``FeedFormatError`` (unsupported encoding) comes from the first line."""
    problems: dict[int, str] = {}

    def texts(lines: Iterator[Line]) -> Iterator[str]:
        for line in lines:
            if line.problem:
                problems[line.number] = line.problem
            yield line.text

    reader = csv.reader(texts(decoded_lines(stream, name)), delimiter=delimiter)
    last = 0
    while True:
        try:
            cells = next(reader)
            problem = None
        except StopIteration:
            return
        except csv.Error as exc:
            cells, problem = [], f"the row cannot be read ({exc})"
        code = "bad_row" if problem else None
        first, last = last + 1, reader.line_num
        for number in range(first, last + 1):
            bad = problems.pop(number, None)
            if bad and problem is None:
                problem, code = (f"line {number}: {bad}" if number != first else bad), "invalid_encoding"
        if problem is None and not any(cell.strip() for cell in cells):
            continue
        yield Row(first, cells, problem, code)
