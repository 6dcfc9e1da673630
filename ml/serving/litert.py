"""The version's model_int8.tflite or model.tflite run in this process through LiteRT (XNNPACK): the
fast CPU runtime, and the factory that prefers it."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ml.serving.base import Embedder, read_model_metadata
from ml.serving.errors import BadEmbedding, EmbedderError, ModelNotFound
from ml.serving.savedmodel import LocalEmbedder

logger = logging.getLogger(__name__)


# Two threads win both single-caller figures and still lead at batch 32 with two callers; two
# interpreters let two requests (web threads, an indexing batch) run at once instead of queueing,
# and the 4 threads they add up to on 2 cores cost little (the right-hand column). On a busy shared
# machine 2 threads lose more than 1 (the runtime note measured 5.6 ms against 2.0 ms at batch 1
# under load 1.5-4): pass num_threads=1 where the cores are already taken.
DEFAULT_TFLITE_THREADS = 2
DEFAULT_TFLITE_POOL = 2


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class TFLiteEmbedder(Embedder):
    """The version's ``model.tflite`` (or, with ``precision="int8"``, its ``model_int8.tflite``) run in
    this process by the LiteRT interpreter (XNNPACK on CPU).

    An interpreter serves one caller at a time, so the embedder keeps ``pool_size`` of them: a call
    takes an idle one (preferring one already sized for its batch, as a resize re-plans the
    interpreter: about 0.5 ms at batch 1, and once 50-120 ms to grow its arena to batch 32), runs, and
    puts it back; more concurrent callers than interpreters wait their turn. Thread-safe.
    ``num_threads`` is per interpreter and is capped at the CPUs this process may use.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        max_batch: int = 32,
        num_threads: int = DEFAULT_TFLITE_THREADS,
        pool_size: int = DEFAULT_TFLITE_POOL,
        precision: str = "float",
    ) -> None:
        if max_batch < 1 or num_threads < 1 or pool_size < 1:
            raise ValueError("max_batch, num_threads and pool_size must be >= 1")
        from ml import tflite

        self.model_dir = Path(model_dir)
        path = tflite.tflite_path(self.model_dir, precision)
        if path is None:
            name = tflite.TFLITE_INT8_FILE if precision == "int8" else tflite.TFLITE_FILE
            raise ModelNotFound(f"no {name} in {self.model_dir}")
        self.precision = precision  # which file serves: "float" (model.tflite) or "int8"
        self.max_batch = max_batch
        self.num_threads = min(num_threads, _cpu_count())
        self.pool_size = pool_size
        self.metadata = read_model_metadata(self.model_dir)
        # All interpreters load here (about 10 ms each for MobileNetV2-0.35): a broken file fails
        # when the process starts, not on a request.
        try:
            runners = [tflite.TFLiteRunner(path, num_threads=self.num_threads) for _ in range(pool_size)]
        except tflite.TFLiteModelError as exc:
            raise ModelNotFound(str(exc)) from exc
        self._image_size = runners[0].image_size
        self._dim = runners[0].dim
        size, dim = self.metadata.get("image_size"), self.metadata.get("embedding_dim")
        if (size and int(size) != self._image_size) or (dim and int(dim) != self._dim):
            raise BadEmbedding(
                f"{path} maps {self._image_size} px to {self._dim}-d but lookalike.json says {size} px, {dim}-d"
            )
        self._idle = runners
        self._all = list(runners)
        self._cond = threading.Condition()
        self._closed = False

    @property
    def image_size(self) -> int:
        return self._image_size

    @property
    def dim(self) -> int:
        return self._dim

    def ready(self) -> bool:
        return not self._closed

    @property
    def resizes(self) -> int:
        """Input reallocations so far, over the pool (a repeated batch size costs none)."""
        return sum(r.resizes for r in self._all)

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        n = images.shape[0]
        with self._cond:
            while not self._idle and not self._closed:
                self._cond.wait()
            if self._closed:
                raise EmbedderError(f"TFLiteEmbedder for {self.model_dir} is closed")
            match = next((i for i, r in enumerate(self._idle) if r.batch == n), -1)
            runner = self._idle.pop(match)
        try:
            out = runner.run(images)
        finally:
            with self._cond:
                if not self._closed:
                    self._idle.append(runner)
                    self._cond.notify()
        if self.precision == "int8":
            # The quantized model's own L2 normalisation runs in int8 and leaves norms of 0.99-1.01;
            # dividing again in float keeps the contract's unit vectors (scores, calibration).
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.float32(1e-12))
        return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._idle = []
            self._cond.notify_all()
        # A call still running holds its runner; the interpreters go when the last user drops them.
        self._all = []


def int8_verified(model_dir: str | os.PathLike[str]) -> bool:
    """The version has a ``model_int8.tflite`` that its export verified against ``model.tflite``
    (``lookalike.json``'s ``tflite_int8`` names the file); a file the export did not vouch for is not served."""
    from ml import tflite

    entry = read_model_metadata(model_dir).get("tflite_int8") or {}
    return entry.get("file") == tflite.TFLITE_INT8_FILE and tflite.tflite_path(model_dir, "int8") is not None


def open_local_embedder(
    model_dir: str | os.PathLike[str],
    max_batch: int = 32,
    *,
    tflite_batch: int | None = None,
    num_threads: int = DEFAULT_TFLITE_THREADS,
    pool_size: int = DEFAULT_TFLITE_POOL,
    prefer_tflite: bool = True,
    precision: str = "float",
) -> Embedder:
    """The in-process embedder for an exported version folder: the fastest file it has that loads.

    With ``precision="int8"`` a verified ``model_int8.tflite`` (:func:`int8_verified`)
    comes first; then ``model.tflite`` (float32: ``precision="float"`` starts here), then the
    SavedModel (versions exported before ``model.tflite`` existed, or ``prefer_tflite=False``). A
    TFLite file that fails to load is logged and skipped. The result's ``precision`` attribute says
    which serves ("int8", "float"; a :class:`LocalEmbedder` has none). Raises :class:`ModelNotFound`
    when nothing loads. ``tflite_batch``: images per call of a TFLite file (default ``max_batch``,
    which the SavedModel takes).
    """
    from ml import tflite

    if precision not in tflite.PRECISIONS:
        raise ValueError(f"precision must be one of {tflite.PRECISIONS}, got {precision!r}")
    if prefer_tflite:
        candidates = ["int8", "float"] if precision == "int8" and int8_verified(model_dir) else ["float"]
        for candidate in candidates:
            if tflite.tflite_path(model_dir, candidate) is None:
                continue
            try:
                return TFLiteEmbedder(
                    model_dir,
                    tflite_batch or max_batch,
                    num_threads=num_threads,
                    pool_size=pool_size,
                    precision=candidate,
                )
            except (ModelNotFound, BadEmbedding) as exc:
                logger.warning("%s: its %s TFLite model did not load (%s)", model_dir, candidate, exc)
    return LocalEmbedder(model_dir, max_batch)
