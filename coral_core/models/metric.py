"""An MMSeg evaluation metric that keeps the confusion matrix: ``CoralIoUMetric``.

It returns the keys of MMSeg's default ``IoUMetric`` (``aAcc``, ``mIoU``, ``mAcc``, in
percent rounded to 2 decimals, as MMSeg returns them), so ``save_best='mIoU'`` and log
parsers work unchanged, and it logs the same per-class table. Unlike ``IoUMetric`` it keeps
the full confusion matrix and :class:`coral_core.evaluation.metrics.SegmentationScores` on the
instance after each evaluation, and can write them to ``output_dir``. Use it in a config as::

    val_evaluator = dict(type="CoralIoUMetric", ignore_index=255)
    test_evaluator = dict(type="CoralIoUMetric", output_dir="work_dirs/run/eval")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from coral_core.atomic import write_json_atomically
from coral_core.evaluation.confusion_plot import save_confusion_matrix
from coral_core.evaluation.metrics import (
    SegmentationScores,
    confusion_matrix,
    scores_from_confusion,
)
from coral_core.labels.taxonomy import IGNORE_INDEX


@METRICS.register_module()
class CoralIoUMetric(BaseMetric):
    """IoU metric for MMSeg that also keeps the confusion matrix.

    Args:
        ignore_index: ground-truth value of pixels left out of every count.
        output_dir: when set, each evaluation writes ``metrics.json`` (see
            :meth:`SegmentationScores.to_dict`), ``confusion_matrix.png``,
            ``confusion_matrix.csv`` (row-normalised) and ``confusion_matrix_counts.csv``
            there. (MMSeg's ``IoUMetric.output_dir`` saves prediction masks instead.)
        collect_device, prefix: as in :class:`mmengine.evaluator.BaseMetric`.

    Attributes:
        last_confusion: int64 ``(N, N)`` counts of the latest evaluation, rows ground truth,
            columns predictions; None before the first. Set on the main process only.
        last_scores: the matching :class:`SegmentationScores`, or None.
    """

    def __init__(
        self,
        ignore_index: int = IGNORE_INDEX,
        output_dir: str | os.PathLike[str] | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.last_confusion: np.ndarray | None = None
        self.last_scores: SegmentationScores | None = None

    @property
    def class_names(self) -> tuple[str, ...]:
        meta = self.dataset_meta
        if not meta or "classes" not in meta:
            raise ValueError(
                "CoralIoUMetric needs dataset_meta['classes']; the runner sets it from the "
                "dataset's METAINFO, or set metric.dataset_meta = {'classes': [...]} by hand"
            )
        return tuple(meta["classes"])

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Count one batch: one confusion matrix per sample, so that MMEngine can drop the
        samples a distributed sampler pads with (``collect_results`` truncates to ``size``).

        Each sample is a dict (MMEngine's ``Evaluator`` converts ``SegDataSample`` with
        ``to_dict()``) with ``pred_sem_seg.data`` and ``gt_sem_seg.data``, integer tensors of
        shape ``(1, H, W)``.
        """
        num_classes = len(self.class_names)
        for sample in data_samples:
            pred = sample["pred_sem_seg"]["data"].squeeze(0).cpu().numpy()
            label = sample["gt_sem_seg"]["data"].squeeze(0).cpu().numpy()
            self.results.append(confusion_matrix(pred, label, num_classes, self.ignore_index))

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Sum the per-sample matrices, keep and log the scores, write ``output_dir`` files.

        Returns:
            ``{"aAcc", "mIoU", "mAcc"}`` in percent rounded to 2 decimals, like MMSeg's
            ``IoUMetric``; NaN when no pixel was counted.
        """
        names = self.class_names
        matrix = np.zeros((len(names), len(names)), dtype=np.int64)
        for sample_matrix in results:
            matrix += sample_matrix
        scores = scores_from_confusion(matrix, names)
        self.last_confusion = matrix
        self.last_scores = scores

        logger = MMLogger.get_current_instance()
        print_log("per class results:", logger)
        print_log("\n" + scores.format_table(), logger=logger)
        if self.output_dir is not None:
            self._write_outputs(matrix, scores, self.output_dir)
            print_log(f"confusion matrix and metrics.json written to {self.output_dir}", logger)
        return {
            "aAcc": round(scores.aacc * 100, 2),
            "mIoU": round(scores.miou * 100, 2),
            "mAcc": round(scores.macc * 100, 2),
        }

    @staticmethod
    def _write_outputs(matrix: np.ndarray, scores: SegmentationScores, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_confusion_matrix(
            matrix,
            scores.class_names,
            out_dir / "confusion_matrix.png",
            out_dir / "confusion_matrix.csv",
        )
        summary = {**scores.to_dict(), "confusion_matrix": matrix.tolist()}
        write_json_atomically(out_dir / "metrics.json", summary, indent=2)
