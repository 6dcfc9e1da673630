"""Early stopping on validation Recall@1: score after every epoch, keep the best weights (across
training phases), stop when the score has not improved for ``patience`` epochs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

# (epoch, validation Recall@1, best so far) after each epoch: progress for a job, a progress bar, a log.
EpochListener = Callable[[int, float, float], None]


class RecallEarlyStopping(keras.callbacks.Callback):
    """``score()`` is validation Recall@1 of ``embedder`` (the model kept and saved; the model being
    fitted may wrap it, or be a part of it that shares its layers)."""

    def __init__(
        self,
        embedder: keras.Model,
        score: Callable[[], float],
        *,
        patience: int,
        checkpoint_path: Path | None = None,
        verbose: bool = True,
        on_epoch: EpochListener | None = None,
    ) -> None:
        super().__init__()
        self.embedder = embedder
        self._score = score
        self.patience = patience
        self.checkpoint_path = checkpoint_path
        self.verbose = verbose
        self.on_epoch = on_epoch
        self.best = -1.0
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.global_epoch = 0
        self.wait = 0

    def start_phase(self) -> None:
        self.wait = 0

    def score(self) -> float:
        recall = float(self._score())
        return 0.0 if np.isnan(recall) else recall

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.global_epoch += 1
        recall = self.score()
        if logs is not None:
            logs["val_recall_at_1"] = recall
        improved = recall > self.best
        if improved:
            self.best, self.best_epoch, self.wait = recall, self.global_epoch, 0
            self.best_weights = [np.array(w) for w in self.embedder.get_weights()]
            if self.checkpoint_path is not None:
                self.embedder.save(self.checkpoint_path)
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True
        if self.verbose:
            mark = " (best)" if improved else f" (best {self.best:.4f} at epoch {self.best_epoch})"
            print(f"epoch {self.global_epoch}: val Recall@1 {recall:.4f}{mark}", flush=True)
        if self.on_epoch is not None:
            self.on_epoch(self.global_epoch, recall, self.best)

    def restore_best(self) -> None:
        if self.best_weights is not None:
            self.embedder.set_weights(self.best_weights)
