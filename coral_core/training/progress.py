"""Training progress for callers that are not a terminal (the FiftyOne train operator).

:class:`ProgressHook` is an MMEngine hook that hands a :class:`TrainProgress` to a callback
after every training iteration and validation. The run's best checkpoint is the one
MMEngine's ``CheckpointHook(save_best="mIoU")`` records during that run (read by the
FiftyOne plugin's training run), never a guess from the files in the work folder, which may
hold an earlier run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mmengine.hooks import Hook


@dataclass(frozen=True)
class TrainProgress:
    """Where a run stands.

    Attributes:
        iteration: iterations done (1-based); ``max_iters``: of how many.
        latest_miou: mIoU of the latest validation, in percent (None before the first).
        best_miou: the best validation mIoU so far, in percent (None before the first).
    """

    iteration: int
    max_iters: int
    latest_miou: float | None = None
    best_miou: float | None = None

    @property
    def fraction(self) -> float:
        """Iterations done as a fraction in [0, 1]."""
        return min(1.0, self.iteration / self.max_iters) if self.max_iters else 0.0

    def describe(self) -> str:
        """``"iteration 40/300, latest mIoU 31.20"`` (mIoU once there is one)."""
        text = f"iteration {self.iteration}/{self.max_iters}"
        if self.latest_miou is not None:
            text += f", latest mIoU {self.latest_miou:.2f}"
        return text


class ProgressHook(Hook):
    """Calls ``report(TrainProgress)`` after every ``every``-th iteration and each validation.

    Args:
        report: the callback; exceptions it raises stop training.
        every: report every N iterations (validations are always reported).
    """

    priority = "VERY_LOW"

    def __init__(self, report: Callable[[TrainProgress], Any], every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.report = report
        self.every = every
        self.latest_miou: float | None = None
        self.best_miou: float | None = None

    def _progress(self, runner) -> TrainProgress:
        return TrainProgress(runner.iter, runner.max_iters, self.latest_miou, self.best_miou)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        # runner.iter counts iterations done once the iteration's hooks have run; here the
        # current one is not yet counted.
        done = runner.iter + 1
        if done % self.every == 0 or done == runner.max_iters:
            self.report(TrainProgress(done, runner.max_iters, self.latest_miou, self.best_miou))

    def after_val_epoch(self, runner, metrics: Mapping[str, float] | None = None) -> None:
        value = (metrics or {}).get("mIoU")
        if value is None or not math.isfinite(float(value)):
            return
        self.latest_miou = float(value)
        if self.best_miou is None or self.latest_miou > self.best_miou:
            self.best_miou = self.latest_miou
        self.report(self._progress(runner))
