"""Reading the text on a product photo: the one gateway to the OCR engine (``rapidocr`` over
onnxruntime), as ``search/vector_store/`` is to Qdrant. Nothing else imports ``rapidocr``.

The PP-OCR detection, orientation and recognition models ship inside the ``rapidocr`` wheel
(Apache-2.0); the engine only checks that they are there, so reading text needs no network. The
files are checked here before the engine is built, so a broken install is an ``OcrUnavailable`` with
the reason, never a download attempt at run time.

One engine per process, built on first use (its three ONNX sessions take about 1 s to load). Calls
are serialised through one reader thread: onnxruntime sessions may run concurrently, but the
background reader is meant to take one core at most beside searches. Each image has a time budget
(measured here: median 0.9 s for a 348 px store photo on one loaded core).

A shopper's photo is read with a second, faster profile (``read_query_words``): the catalog profile
enlarges every photo until its short side is 736 px (the engine's default) and turns each line upright
with the orientation model; the query profile shrinks the long side to ``QUERY_DET_SIDE`` instead and
skips the orientation stage (a pack photographed upside down loses its words, the visual answer stays).
It has its own engine and reader threads, so a query never waits behind a catalog image.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from rapidocr import RapidOCR
    from rapidocr.utils.output import RapidOCROutput

log = logging.getLogger(__name__)

# Recorded with every reading, so an upgrade of the engine or its models can find what to re-read.
ENGINE = "rapidocr-3.10/PP-OCRv6-small"
MODEL_FILES = ("PP-OCRv6_det_small.onnx", "ch_ppocr_mobile_v2.0_cls_mobile.onnx", "PP-OCRv6_rec_small.onnx")
DEFAULT_BUDGET_S = 10.0
# The query profile's detection size (the long side, px). Measured on 40 Grocery validation photos of
# packages (348 px), one thread, on a 2-core machine at load 5 (other jobs; quiet figures are lower):
# catalog profile p50 1149 / p95 3014 ms; long side 480 p50 423 / p95 1405 ms; 480 and the 8 largest
# lines p50 499 / p95 894 ms (384 px: 465 / 873, the same words); 36 of 40 photos gave words in each.
# Recognition was three quarters of the time, hence the cap on lines.
QUERY_DET_SIDE = 480
# Lines the query profile recognises, the largest boxes first: recognition is most of a reading's time
# and grows with the lines found (a pack's small print has dozens), while the brand and the product's
# name are printed large. Six is one batch of the recogniser (rapidocr's Rec.rec_batch_num).
QUERY_MAX_LINES = 6
QUERY_READERS = 2  # concurrent query readings per process (the engine's sessions run concurrently)
SPINNING_KEY = "session.intra_op.allow_spinning"  # onnxruntime's session option (see _no_spinning)


class OcrUnavailable(RuntimeError):
    """The engine cannot run here (not installed, its models missing)."""


class OcrTimeout(TimeoutError):
    """One image took longer than its budget."""


@dataclass(frozen=True)
class Word:
    """One line or word group the engine read: its text, confidence (0-1) and box, four (x, y) corners
    in the pixels of the image as given, clockwise from the top left."""

    text: str
    confidence: float
    box: tuple[tuple[float, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": self.confidence, "box": [list(p) for p in self.box]}


_lock = threading.Lock()
_engine: RapidOCR | None = None
_query_engine: RapidOCR | None = None
_threads = 1
_query_threads = 1
# One reader thread per process: a budget is kept by waiting on it, since onnxruntime cannot be
# interrupted; a late reading finishes on that thread and is dropped, and the next image waits for it
# within its own budget (an image failed that way is read again by the sweep).
_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookalike-ocr")
# The query readers: a late reading finishes there and is dropped, as above. A query finding every
# reader busy (late readings of an overloaded host) is not queued behind them: it is answered at once
# without its words, so an overload costs the shoppers their re-ranking, not a wait of a budget each.
_query_executor = concurrent.futures.ThreadPoolExecutor(
    max_workers=QUERY_READERS, thread_name_prefix="lookalike-ocr-query"
)
_query_slots = threading.BoundedSemaphore(QUERY_READERS)


def configure(*, threads: int | None = None, query_threads: int | None = None) -> None:
    """Set the engines' intra-op threads before their first use (a later call changes nothing built)."""
    global _threads, _query_threads
    if threads is not None:
        _threads = max(1, int(threads))
    if query_threads is not None:
        _query_threads = max(1, int(query_threads))


def models_dir() -> Path:
    spec = importlib_util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise OcrUnavailable("the rapidocr package is not installed (pip install rapidocr onnxruntime)")
    return Path(spec.origin).parent / "models"


def _largest_lines(crops: list[np.ndarray], det: Any, keep: int) -> tuple[list[np.ndarray], Any]:
    """The ``keep`` largest of the detected lines (by their box's area), in reading order."""
    if len(crops) <= keep:
        return crops, det
    boxes = np.asarray(det.boxes)
    area = np.ptp(boxes[:, :, 0], axis=1) * np.ptp(boxes[:, :, 1], axis=1)
    chosen = sorted(np.argsort(-area, kind="stable")[:keep].tolist())
    det.boxes = boxes[chosen]
    det.scores = [det.scores[i] for i in chosen]
    return [crops[i] for i in chosen], det


def _no_spinning() -> None:
    """Sessions rapidocr builds from now on leave their intra-op threads idle between runs.

    By default onnxruntime's intra-op threads spin on a core for a while after each run, waiting for
    more work. In a web process that core belongs to the next search's embedding: after a query
    photo was read, its reader's spare thread spun beside the searches that followed. rapidocr has no
    setting for it, so its session options get the entry here (rapidocr 3.10, which ``ENGINE`` pins)."""
    from rapidocr.inference_engine.onnxruntime import main as ort_main

    original = ort_main.OrtInferSession._init_sess_opts
    if getattr(original, "lookalike_no_spinning", False):
        return

    def init_sess_opts(cfg: Any) -> Any:
        options = original(cfg)
        options.add_session_config_entry(SPINNING_KEY, "0")
        return options

    init_sess_opts.lookalike_no_spinning = True  # type: ignore[attr-defined]
    ort_main.OrtInferSession._init_sess_opts = staticmethod(init_sess_opts)  # type: ignore[method-assign]


def _build(query: bool = False) -> RapidOCR:
    folder = models_dir()
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        # rapidocr would download them; reading text must work offline, so refuse instead.
        raise OcrUnavailable(f"rapidocr's models are missing from its package: {', '.join(missing)}")
    try:
        from rapidocr import RapidOCR

        _no_spinning()
    except ImportError as exc:  # onnxruntime or opencv absent
        raise OcrUnavailable(f"rapidocr cannot be imported: {exc}") from exc
    params = {
        "Global.log_level": "warning",
        "EngineConfig.onnxruntime.intra_op_num_threads": _threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        "Det.model_path": str(folder / MODEL_FILES[0]),
        "Cls.model_path": str(folder / MODEL_FILES[1]),
        "Rec.model_path": str(folder / MODEL_FILES[2]),
    }
    if not query:
        return RapidOCR(params=params)
    params.update({"Det.limit_type": "max", "Det.limit_side_len": QUERY_DET_SIDE, "Global.use_cls": False})
    params["EngineConfig.onnxruntime.intra_op_num_threads"] = _query_threads

    class QueryOCR(RapidOCR):
        # rapidocr has no setting for how many lines to recognise: its detection step is narrowed here
        # (the method of rapidocr 3.10 that returns the crops and the detection result; ENGINE pins it).
        def detect_and_crop(self, img: np.ndarray, op_record: dict[str, Any]) -> tuple[list[np.ndarray], Any]:
            crops, det = super().detect_and_crop(img, op_record)
            return _largest_lines(crops, det, QUERY_MAX_LINES)

    return QueryOCR(params=params)


def engine() -> RapidOCR:
    """The process's engine, built on first use."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = _build()
    return _engine


def query_engine() -> RapidOCR:
    """The process's engine for shoppers' photos (the query profile), built on first use."""
    global _query_engine
    if _query_engine is None:
        with _lock:
            if _query_engine is None:
                _query_engine = _build(query=True)
    return _query_engine


def _run(pixels: np.ndarray, query: bool = False) -> list[Word]:
    # Called with every stage on (detect, classify, recognise), RapidOCR answers a RapidOCROutput;
    # its signature also lists the single stages' outputs.
    result = cast("RapidOCROutput", (query_engine() if query else engine())(pixels))
    if result.txts is None or result.scores is None or result.boxes is None:
        return []
    words = []
    for text, score, box in zip(result.txts, result.scores, result.boxes, strict=True):
        text = str(text).strip()
        if text:
            corners = tuple((round(float(x), 1), round(float(y), 1)) for x, y in np.asarray(box).tolist())
            words.append(Word(text=text, confidence=round(float(score), 4), box=corners))
    return words


def read_words(image: Image.Image | np.ndarray, *, budget_s: float = DEFAULT_BUDGET_S) -> list[Word]:
    """The text read on ``image`` (an upright RGB picture), in the engine's reading order.

    Raises ``OcrTimeout`` past ``budget_s`` and ``OcrUnavailable`` when the engine cannot run."""
    # The engine is built before the clock starts: the budget is the image's, and loading the models
    # (seconds, more on a busy host) failed the first image a worker read after it started.
    engine()
    return _wait(_executor.submit(_run, _pixels(image), False), budget_s)


def read_query_words(image: Image.Image | np.ndarray, *, budget_s: float) -> list[Word]:
    """As ``read_words`` with the query profile: a shopper's photo, read while the shopper waits.

    Raises ``OcrTimeout`` at once when every query reader is still busy."""
    pixels = _pixels(image)
    if not _query_slots.acquire(blocking=False):
        raise OcrTimeout("every query reader is busy")
    future = _query_executor.submit(_run, pixels, True)
    # The slot is free again when the reading ends, in time or late.
    future.add_done_callback(lambda _: _query_slots.release())
    return _wait(future, budget_s)


def _pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError("read_words takes an RGB image")
    # The engine expects OpenCV's channel order.
    return np.ascontiguousarray(pixels[:, :, ::-1])


def _wait(future: concurrent.futures.Future[list[Word]], budget_s: float) -> list[Word]:
    try:
        return future.result(timeout=budget_s)
    except concurrent.futures.TimeoutError as exc:
        raise OcrTimeout(f"reading text took longer than {budget_s:g} s") from exc
