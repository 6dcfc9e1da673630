"""What the benchmarks read from ../shared (never copied into the repo), and the check that it is there."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "grocery-store"
DEFAULT_WEIGHTS = REPO / ".." / "shared" / "weights" / "mobilenet_v2_0.35_224_imagenet_no_top.weights.h5"


def missing_inputs(data: Path, weights: Path, split: str) -> str | None:
    """A one-line reason to skip when the dataset's ``split`` folder or the weights file is absent."""
    if not (Path(data) / "dataset" / split).is_dir():
        return f"skipped: no Grocery Store dataset at {data} (pass --data)"
    if not Path(weights).is_file():
        return f"skipped: no backbone weights at {weights} (pass --weights)"
    return None
