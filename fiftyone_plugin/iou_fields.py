"""Per-sample IoU of a FiftyOne segmentation evaluation, as fields to sort and filter by.

FiftyOne's segmentation evaluation stores accuracy, precision and recall per sample but no
IoU. :func:`write_iou_fields` adds ``<eval_key>_miou`` and one ``<eval_key>_iou_<class>``
float field per class (``None`` where the class is in neither mask), computed from the masks
the evaluation compared. The ``segmentation_iou`` evaluation metric of this plugin calls it,
and lists these fields so that deleting the evaluation deletes them too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import numpy as np

from coral_core.evaluation.metrics import confusion_matrix, scores_from_confusion
from coral_core.labels.taxonomy import IGNORE_INDEX

from .masks import read_mask

IOU_METRIC_NAME = "segmentation_iou"


def miou_field(eval_key: str) -> str:
    return f"{eval_key}_miou"


def class_iou_field(eval_key: str, class_name: str) -> str:
    """``<eval_key>_iou_<class>`` with characters FiftyOne field names do not allow as ``_``."""
    slug = re.sub(r"[^0-9A-Za-z]+", "_", class_name).strip("_") or "class"
    return f"{eval_key}_iou_{slug}"


def iou_fields(samples, eval_key: str) -> list[str]:
    """The IoU fields of ``eval_key`` that exist on the dataset."""
    prefix = f"{eval_key}_iou_"
    schema = samples._dataset.get_field_schema()
    return [name for name in schema if name == miou_field(eval_key) or name.startswith(prefix)]


def _masks(samples, field: str) -> list[np.ndarray | None]:
    paths, inline = samples.values([f"{field}.mask_path", f"{field}.mask"])
    return [
        read_mask(path) if path else (np.asarray(mask) if mask is not None else None)
        for path, mask in zip(paths, inline, strict=True)
    ]


def write_iou_fields(
    samples,
    eval_key: str,
    pred_field: str,
    gt_field: str,
    targets: Mapping[int, str],
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """Store per-sample mIoU and per-class IoU of two ``fo.Segmentation`` fields.

    Args:
        samples: the evaluated dataset or view.
        eval_key: the evaluation's key (prefix of the new fields).
        pred_field, gt_field: the predicted and ground-truth ``fo.Segmentation`` fields.
        targets: ``{pixel value: class name}``; other values (255 = ignore) are not counted.
        progress: called with (fraction done, label) now and then.

    Returns:
        ``(N, N)`` int64 confusion matrix summed over the samples, classes in sorted value
        order (rows ground truth).
    """
    values = sorted(int(v) for v in targets)
    names = [targets[v] for v in values]
    lookup = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lookup[values] = np.arange(len(values), dtype=np.uint8)
    total = np.zeros((len(values), len(values)), dtype=np.int64)
    per_class: dict[str, list[float | None]] = {name: [] for name in names}
    mious: list[float | None] = []
    gts, preds = _masks(samples, gt_field), _masks(samples, pred_field)
    for index, (gt, pred) in enumerate(zip(gts, preds, strict=True)):
        if gt is None or pred is None or gt.shape != pred.shape:
            mious.append(None)
            for name in names:
                per_class[name].append(None)
            continue
        gt_index = lookup[gt.astype(np.uint8)]
        pred_index = lookup[pred.astype(np.uint8)]
        # predicted values outside the targets count as the first class (never as a hit)
        pred_index = np.where(pred_index == IGNORE_INDEX, 0, pred_index)
        matrix = confusion_matrix(pred_index, gt_index, len(values))
        total += matrix
        scores = scores_from_confusion(matrix, names)
        mious.append(None if np.isnan(scores.miou) else float(scores.miou))
        for i, name in enumerate(names):
            iou = scores.iou[i]
            per_class[name].append(None if np.isnan(iou) else float(iou))
        if progress is not None and index % 10 == 0:
            progress((index + 1) / len(gts), f"IoU of sample {index + 1}/{len(gts)}")
    import fiftyone as fo

    dataset = samples._dataset
    columns = {miou_field(eval_key): mious}
    columns.update({class_iou_field(eval_key, name): per_class[name] for name in names})
    for field, column in columns.items():
        if not dataset.has_sample_field(field):
            dataset.add_sample_field(field, fo.FloatField)
        samples.set_values(field, column)
    return total
