"""Evaluation metric: per-sample mIoU and per-class IoU of a segmentation evaluation.

FiftyOne computes it for any segmentation evaluation run with
``custom_metrics=["@coralseg/coralseg/segmentation_iou"]`` (the evaluate operator does);
the aggregate is the dataset mIoU in percent, shown in the Model Evaluation panel, and
deleting the evaluation deletes the fields.
"""

from __future__ import annotations

import numpy as np
from fiftyone.operators.evaluation_metric import EvaluationMetric, EvaluationMetricConfig

from coral_core.evaluation.metrics import scores_from_confusion

from ..iou_fields import IOU_METRIC_NAME, iou_fields, write_iou_fields


def _targets(samples, results) -> dict[int, str]:
    dataset = samples._dataset
    field = results.config.pred_field
    targets = dataset.mask_targets.get(field) or dataset.default_mask_targets
    if targets:
        return {int(value): name for value, name in targets.items()}
    return {int(name): name for name in results.classes if str(name).isdigit()}


class SegmentationIoU(EvaluationMetric):
    @property
    def config(self):
        return EvaluationMetricConfig(
            name=IOU_METRIC_NAME,
            label="mIoU (coralseg)",
            description="Per-sample mIoU and per-class IoU fields of a segmentation evaluation",
            eval_types=["segmentation"],
            aggregate_key="mIoU",
            lower_is_better=False,
            unlisted=True,
        )

    def compute(self, samples, results, **kwargs):
        targets = _targets(samples, results)
        matrix = write_iou_fields(
            samples, results.key, results.config.pred_field, results.config.gt_field, targets
        )
        samples._add_paths_to_sidebar_group(iou_fields(samples, results.key), results.key)
        scores = scores_from_confusion(matrix, [targets[v] for v in sorted(targets)])
        return None if np.isnan(scores.miou) else round(scores.miou * 100, 2)

    def get_fields(self, samples, config, eval_key):
        return iou_fields(samples, eval_key)
