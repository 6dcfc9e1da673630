"""Training as a job, apart from its runner (search/jobs/kinds/train.py, which starts a training process
at low priority, ``manage.py train --job N``, and follows it): the training options a job may set, the
training process's progress reporting, and that process's environment. The process's output becomes the
job's log, and the process reports its epochs as the job's progress. Training needs no vector store (it reads the media and the database, and writes model
files and a ModelVersion row), so it runs beside the web process without holding anything up.
``manage.py train`` in the foreground trains in its own process with the same progress reporting.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from ml.evaluate import MAP_AT_R, RECALL_AT_1, RECALL_AT_5
from search.jobs.records import job_set_result
from search.jobs.registry import JobError

if TYPE_CHECKING:
    from ml.train_config import TrainConfig
    from search.services.training import TrainOutcome

# ml.train prints this after every epoch of both phases (RecallEarlyStopping, with the global epoch
# number); epochs are counted from it. If the line changes, progress falls back to the stages only.
# Evaluating and exporting after the epochs count as one step each.
AFTER_EPOCHS = ("calibrating", "exporting")
# TensorFlow's start-up chatter (absl lines written before logging is set up): not worth a log line.
NOISE = re.compile(r"^([IWE]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")


class _OptionParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would print usage and exit the web process
        raise JobError(f"Training options: {message}.", "options")


def add_catalog_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of training on the catalog, beside the model's (ml/train_args.py): what to train on."""
    from ml.train_args import add_training_arguments

    parser.add_argument("--manifest", default=None, help="Train on a JSONL manifest instead of the catalog.")
    parser.add_argument(
        "--with-feedback",
        action="store_true",
        help="Also train on shoppers' clicks (searches whose photo was kept: SEARCH_LOG_PHOTOS=true).",
    )
    add_training_arguments(parser, weights_default=settings.BACKBONE_WEIGHTS)


def option_parser() -> argparse.ArgumentParser:
    """The training options a job may set: the command line's, defined once."""
    parser = _OptionParser(prog="train", add_help=False)
    add_catalog_training_arguments(parser)
    return parser


def train_defaults() -> dict[str, Any]:
    return vars(option_parser().parse_args([]))


def _argv(options: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for name, value in options.items():
        flag = "--" + str(name).replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif value is not None and value != "":
            argv += [flag, str(value)]
    return argv


def parse_train_options(options: dict[str, Any]) -> tuple[dict[str, Any], TrainConfig]:
    """(the given options with their parsed values, the TrainConfig they describe); JobError if wrong."""
    from ml.backbones import WeightsError
    from ml.train_args import config_from_args

    parsed = vars(option_parser().parse_args(_argv(options)))
    config = config_from_args(parsed, output_dir="")
    try:
        config.validate()
    except (ValueError, WeightsError) as exc:
        raise JobError(f"Training options: {exc}", "options") from exc
    if parsed["manifest"] and not Path(parsed["manifest"]).is_file():
        raise JobError(f"Training options: manifest not found: {parsed['manifest']}.", "options")
    return {name: parsed[name] for name in options}, config


def check_train_params(params: dict[str, Any]) -> dict[str, Any]:
    given = dict(params.get("options") or {})
    # The weights the submitter meant, recorded: the process that trains may see another setting or
    # another working folder.
    weights = str(given.get("weights") or settings.BACKBONE_WEIGHTS)
    given["weights"] = str(Path(weights).resolve()) if Path(weights).is_file() else weights
    options, _ = parse_train_options(given)
    return {"options": options, "then_promote": bool(params.get("then_promote", False))}


def epochs_planned(config: TrainConfig) -> int:
    if config.mode == "cached":
        return config.epochs
    return config.head_epochs + (config.epochs if config.unfreeze_layers > 0 else 0)


# --- in the training process ---------------------------------------------------------------------------


class _LineTee(io.TextIOBase):
    """stdout that still prints, and hands each finished line to ``on_line`` (the last state of a line
    a progress bar rewrote with carriage returns)."""

    def __init__(self, target: TextIO, on_line: Callable[[str], None]) -> None:
        self.target = target
        self.on_line = on_line
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        self.target.write(text)
        with self._lock:
            self._partial += text
            *done, self._partial = self._partial.split("\n")
        for line in done:
            line = line.rsplit("\r", 1)[-1].rstrip()
            if line:
                self.on_line(line)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:
        return False  # Keras then prints one line per epoch instead of a redrawn bar

    # typeshed declares TextIOBase.encoding a plain attribute, but io's is read-only at runtime (setting
    # it raises AttributeError): a property is the only way to answer it.
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8") or "utf-8"


@contextlib.contextmanager
def _stdout_lines(on_line: Callable[[str], None]) -> Iterator[None]:
    original = sys.stdout
    sys.stdout = _LineTee(original, on_line)
    try:
        yield
    finally:
        sys.stdout = original


def train_reporting(
    *,
    config: TrainConfig,
    report: Callable[[int, int], None],
    on_line: Callable[[str], None] | None = None,
    manifest: Path | None = None,
    split_by: str = "photo",
    val_fraction: float = 0.1,
    with_feedback: bool = False,
) -> TrainOutcome:
    """Train a candidate (search/services/training.py) and report progress: epochs, then evaluating and
    exporting. ``on_line`` hears every line the training prints."""
    from search.services.training import train_candidate

    epochs = epochs_planned(config)
    total = epochs + len(AFTER_EPOCHS)
    state = {"done": 0}
    report(0, total)

    def line(text: str) -> None:
        if on_line is not None:
            on_line(text)

    def epoch(number: int, recall: float, best: float) -> None:
        state["done"] = min(number, epochs)
        report(state["done"], total)

    def stage(name: str) -> None:
        if name in AFTER_EPOCHS:
            state["done"] = max(state["done"], epochs + AFTER_EPOCHS.index(name))
            report(state["done"], total)

    with _stdout_lines(line):
        outcome = train_candidate(
            config=config,
            manifest=manifest,
            split_by=split_by,
            val_fraction=val_fraction,
            on_stage=stage,
            on_epoch=epoch,
            with_feedback=with_feedback,
        )
    report(total, total)
    return outcome


def _figure(value: Any) -> str:
    """A metric for a summary line: "n/a" for one that could not be measured (stored as null)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{number:.3f}" if math.isfinite(number) else "n/a"


def outcome_result(outcome: TrainOutcome) -> dict[str, Any]:
    """What a training job records: the candidate it made, its metrics, and the line to print."""
    m, b = outcome.metrics, outcome.baseline
    summary = (
        f"Candidate model v{outcome.model.version} in {outcome.wall_time_s:.0f} s: "
        f"R@1 {_figure(m.get(RECALL_AT_1))} (untrained {_figure(b.get(RECALL_AT_1))}), "
        f"R@5 {_figure(m.get(RECALL_AT_5))}, mAP@R {_figure(m.get(MAP_AT_R))}. "
        f"Report: {outcome.model.report_path}."
    )
    clicks = (outcome.model.metrics or {}).get("feedback_clicks")
    if clicks:  # trained --with-feedback: how many shoppers' clicks it trusted, and dropped
        dropped = sum(v for k, v in clicks.items() if k != "trusted")
        summary += f" Shoppers' clicks: {clicks['trusted']} trusted, {dropped} dropped."
    return {
        "model_version": outcome.model.version,
        RECALL_AT_1: m.get(RECALL_AT_1),
        MAP_AT_R: m.get(MAP_AT_R),
        f"baseline_{RECALL_AT_1}": b.get(RECALL_AT_1),
        "wall_time_s": outcome.wall_time_s,
        "feedback_clicks": clicks or None,
        "summary": summary,
    }


def record_outcome(job_id: int, outcome: TrainOutcome) -> dict[str, Any]:
    result = outcome_result(outcome)
    job_set_result(job_id, result)
    return result


def watch_parent() -> None:
    """End this training process if the runner that started it dies: nobody would follow it, and its
    job is failed as stale anyway."""
    parent = os.getppid()

    def loop() -> None:
        while True:
            threading.Event().wait(2.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=loop, name="lookalike-parent-watch", daemon=True).start()


# --- the training process's environment, set by the runner that starts it -----------------------------


def database_url() -> str:
    """This process's database as a URL, for a child process (tests run against a test database whose
    name differs from DATABASE_URL's)."""
    import dj_database_url

    db = connection.settings_dict
    given = os.environ.get("DATABASE_URL")
    if given and dj_database_url.parse(given).get("NAME") == db["NAME"]:
        return given
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user, password = quote(db.get("USER") or ""), quote(str(db.get("PASSWORD") or ""))
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(
        DATABASE_URL=database_url(),
        VAR_DIR=str(settings.VAR_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        MODELS_DIR=str(settings.MODELS_DIR),
        PYTHONUNBUFFERED="1",
    )
    return env
