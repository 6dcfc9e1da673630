"""What grew in Python between two of the traced soak's snapshots (bench/gunicorn_traced.conf.py)."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path
from typing import Any

# The tracer's own bookkeeping and the import machinery are not the application's memory.
_IGNORED = (tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")


def _short(filename: str) -> str:
    # Relative to the project, the installed packages or the standard library: the same on every machine.
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    if filename.startswith(root):
        return filename.removeprefix(root)
    return re.sub(r"^.*/lib/python3\.\d+/", "", filename)


def snapshots(folder: Path) -> list[tuple[float, Path]]:
    """(wall-clock second, file) of every snapshot in ``folder``, oldest first."""
    return sorted((float(p.stem), p) for p in folder.glob("*.snap"))


def _load(path: Path) -> tracemalloc.Snapshot:
    snap = tracemalloc.Snapshot.load(str(path))
    return snap.filter_traces([tracemalloc.Filter(False, pattern) for pattern in _IGNORED])


def growth(folder: Path, start_wall: float, end_wall: float, top: int = 15) -> dict[str, Any]:
    """The first snapshot at or after ``start_wall`` against the last one at or before ``end_wall``:
    the traced total of every snapshot, and the call sites (``top``, by traceback) that grew most."""
    taken = snapshots(folder)
    inside = [(t, p) for t, p in taken if start_wall <= t <= end_wall]
    if len(inside) < 2:
        return {"error": f"{len(inside)} snapshot(s) inside the measured window; need 2"}
    loaded = [(t, _load(p)) for t, p in inside]  # each file read once
    totals = [
        (round(t - start_wall, 1), round(sum(s.size for s in snap.statistics("filename")) / 2**20, 2))
        for t, snap in loaded
    ]
    (t_first, first), (t_last, last) = loaded[0], loaded[-1]
    diffs = last.compare_to(first, "traceback")
    rows = []
    for d in diffs[:top]:
        rows.append(
            {
                "size_diff_kib": round(d.size_diff / 1024, 1),
                "size_kib": round(d.size / 1024, 1),
                "count_diff": d.count_diff,
                # Innermost frame first: where the memory was allocated, then who asked for it.
                "frames": [f"{_short(f.filename)}:{f.lineno}" for f in reversed(d.traceback)][:8],
            }
        )
    return {
        "from_s": round(t_first - start_wall, 1),
        "to_s": round(t_last - start_wall, 1),
        "traced_mib": totals,
        "traced_growth_mib": round(totals[-1][1] - totals[0][1], 2),
        "top_growth": rows,
    }
