"""Arrays too large to hold in memory: rows of one shape and dtype in a file, appended in blocks and
read back with explicit reads.

Training keeps its decoded photos and cached activations here, so its memory stays flat as a catalog
grows: a catalog of 2,187 one-photo products held 35,000 cached views, 14.6 GB resident in RAM.
Reads go through ``os.pread``, not a memory map: the operating system's page cache still keeps a
file that fits in RAM hot, but those pages are not the process's own. A mapped file's pages count
towards the process's resident set once touched, and a training epoch touches all of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class DiskArray:
    """``len(a)`` rows of ``row_shape`` and ``dtype`` in the file at ``path`` (created empty; an
    existing file there is replaced). Indexing by an int, a slice with step 1, or an array of ints
    or bools returns an ordinary numpy array, read from the file."""

    def __init__(self, path: str | os.PathLike[str], row_shape: tuple[int, ...], dtype: Any) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.row_shape = tuple(int(d) for d in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._rows = 0

    # --- writing ---------------------------------------------------------------------------------

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {block.shape[1:]} do not fit an array of {self.row_shape}")
        data = block.data.cast("B")
        offset = self._rows * self.row_bytes
        while data:
            written = os.pwrite(self._require_fd(), data, offset)
            data, offset = data[written:], offset + written
        self._rows += int(block.shape[0])

    # --- reading ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._rows, *self.row_shape)

    @property
    def nbytes(self) -> int:
        return int(self._rows * self.row_bytes)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            index = int(key) + (self._rows if key < 0 else 0)
            if not 0 <= index < self._rows:
                raise IndexError(f"row {key} of {self._rows}")
            return np.asarray(self._read(index, 1)[0])
        if isinstance(key, slice):
            start, stop, step = key.indices(self._rows)
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read(start, max(0, stop - start))
        rows = np.asarray(key)
        if rows.dtype == bool:
            if rows.shape != (self._rows,):
                raise IndexError(f"a mask of {rows.shape} for {self._rows} rows")
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64).ravel()
        rows = np.where(rows < 0, rows + self._rows, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= self._rows):
            raise IndexError(f"rows out of range for {self._rows} rows")
        return self._gather(rows)

    def _read(self, start: int, count: int) -> np.ndarray:
        out = np.empty((count, *self.row_shape), self.dtype)
        view = out.data.cast("B")
        offset, done = start * self.row_bytes, 0
        while done < len(view):
            got = os.preadv(self._require_fd(), [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"{self.path} ended early")
            done += got
        return out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        if not len(rows):
            return out
        # Rows in file order, each run of consecutive rows in one read; then back to the order asked.
        order = np.argsort(rows, kind="stable")
        wanted = rows[order]
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        at = 0
        for run in np.split(wanted, breaks):
            first = int(run[0])
            span = self._read(first, int(run[-1]) - first + 1)
            out[order[at : at + len(run)]] = span[run - first]
            at += len(run)
        return out

    # --- lifetime --------------------------------------------------------------------------------

    def close(self, *, delete: bool = True) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if delete:
            self.path.unlink(missing_ok=True)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return self._fd

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]


class Rows:
    """A lazy selection of rows of an array or DiskArray: ``Rows(a, idx)[k]`` is ``a[idx[k]]``, read
    when asked for, so passing a subset along does not copy it into memory."""

    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *tuple(self.base.shape[1:]))

    @property
    def dtype(self) -> np.dtype:
        dtype: np.dtype = np.dtype(self.base.dtype)
        return dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, int | np.integer):
            return np.asarray(self.base[int(self.rows[key])])
        return np.asarray(self.base[self.rows[key]])
