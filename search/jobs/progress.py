"""How a job shows its progress: its pace (``Rate``, "18.2 images/s") and a log tail in which a progress
bar's redraws collapse to the bar's latest state."""

from __future__ import annotations

import re
import time


class Rate:
    """Items per second since counting began, for a job's progress lines ("18.2 images/s") and bars.

    Counted from the first ``update`` (not from the job's start): a resumed job, or one that spent a
    while reading a manifest first, shows the pace of the work it is doing now.
    """

    def __init__(self, unit: str = "images", *, every_s: float = 10.0) -> None:
        self.unit = unit
        self.every_s = every_s
        self._start: tuple[float, int] | None = None
        self._last: tuple[float, int] | None = None
        self._said = 0.0

    def update(self, count: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = (now, count)
        self._last = (now, count)

    def per_s(self) -> float | None:
        if self._start is None or self._last is None or self._last[0] <= self._start[0]:
            return None
        return (self._last[1] - self._start[1]) / (self._last[0] - self._start[0])

    def text(self) -> str:
        rate = self.per_s()
        return f"{rate:.1f} {self.unit}/s" if rate is not None else f"- {self.unit}/s"

    @property
    def count(self) -> int:
        return self._last[1] if self._last is not None else 0

    def due_soon(self) -> bool:
        """A line would be due if the count moved: time to measure it (a query, say), not before."""
        return time.monotonic() - self._said >= self.every_s

    def due(self) -> bool:
        """True at most once per ``every_s``: when a runner should log a progress line."""
        now = time.monotonic()
        if now - self._said < self.every_s or self.per_s() is None:
            return False
        self._said = now
        return True


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A progress bar's refresh, as a pipe delivers it (each redraw a line of its own): tqdm's
# "desc:  40%|####      | 8/20 [00:01<00:02, 7.5img/s]" and Keras's "  8/17 ━━━━━━━━━━━ 2s 200ms/step".
_TQDM_BAR = re.compile(r"^(?P<desc>.*?)\s*\d{1,3}%\|.*\|\s*[\d.]+[kMG]?/(?P<total>[\d.]+[kMG]?)")
_KERAS_BAR = re.compile(r"^\s*\d+/(?P<total>\d+)\s+━")


def progress_bar_key(line: str) -> tuple[str, ...] | None:
    """Which progress bar a line is a refresh of (its kind, label and total), or None for any other line.
    Two refreshes of one bar have the same key."""
    plain = _ANSI.sub("", line)
    if m := _TQDM_BAR.match(plain):
        return ("tqdm", m["desc"].strip(), m["total"])
    if m := _KERAS_BAR.match(plain):
        return ("keras", m["total"])
    return None


def merge_log_lines(kept: list[str], lines: list[str]) -> tuple[list[str], int]:
    """``kept`` with ``lines`` after it, where a refresh of the progress bar on the line just before
    replaces that line instead of adding one: a log keeps only a bar's latest state, not each redraw.
    Returns the lines and how many were added (replacements add none)."""
    merged, added = list(kept), 0
    for line in lines:
        key = progress_bar_key(line)
        if key is not None and merged and progress_bar_key(merged[-1]) == key:
            merged[-1] = line
        else:
            merged.append(line)
            added += 1
    return merged, added
