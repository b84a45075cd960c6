"""Semantic-segmentation scores from a confusion matrix, computed the way MMSegmentation does.

Conventions:

* a confusion matrix is an int64 array of shape ``(N, N)`` for N classes; rows are the
  ground-truth class, columns the predicted class, entries pixel counts;
* label and prediction maps are integer arrays (usually HxW) holding class ids ``0..N-1``;
  label pixels equal to ``ignore_index`` (255 by default) are not counted.

Scores follow :class:`mmseg.evaluation.IoUMetric` (``iou_metrics=['mIoU', 'mDice']``):
a per-class score whose denominator is zero is NaN, and the means (mIoU, mAcc, ...) are
``nanmean`` over the classes, so a class that appears in neither the labels nor the
predictions does not pull the mean down. Note which denominator each score has:

* IoU and Dice are NaN only for a class absent from both labels and predictions; a class
  that is predicted but never present scores 0 and counts in mIoU;
* Acc (recall) is NaN for every class without ground-truth pixels, predicted or not;
* Precision is NaN for every class that is never predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from coral_core.labels.taxonomy import IGNORE_INDEX


def confusion_matrix(
    pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Count pixels per (ground-truth class, predicted class) pair.

    Args:
        pred: predicted class ids ``0..num_classes-1``, integer array (usually HxW). Values
            at ignored pixels are not read.
        label: ground-truth class ids, same shape as ``pred``; ``ignore_index`` marks pixels
            that are skipped.
        num_classes: N, the number of classes.
        ignore_index: label value of pixels left out of the count.

    Returns:
        int64 array of shape ``(N, N)``: entry ``[t, p]`` is the number of pixels labelled
        ``t`` and predicted ``p``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ValueError(f"num_classes must be an int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    pred = np.asarray(pred)
    label = np.asarray(label)
    for name, array in (("pred", pred), ("label", label)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(
                f"{name} must hold integer class ids, got dtype {array.dtype}; convert "
                "score maps with argmax and boolean masks with astype(np.uint8) first"
            )
    if pred.shape != label.shape:
        raise ValueError(
            f"pred has shape {pred.shape} but label has shape {label.shape}; resize the "
            "prediction to the label's size before counting"
        )
    keep = label != ignore_index
    label = label[keep].astype(np.int64)
    pred = pred[keep].astype(np.int64)
    bad_labels = (label < 0) | (label >= num_classes)
    if bad_labels.any():
        raise ValueError(
            f"label has values {_some_values(label[bad_labels])} that are neither a class id "
            f"0..{num_classes - 1} nor the ignore index {ignore_index}; check num_classes "
            "and the mask convention (is background a class or ignored?)"
        )
    bad_preds = (pred < 0) | (pred >= num_classes)
    if bad_preds.any():
        raise ValueError(
            f"pred has values {_some_values(pred[bad_preds])} outside the class ids "
            f"0..{num_classes - 1} at pixels that are not ignored"
        )
    counts = np.bincount(label * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def _some_values(values: np.ndarray, limit: int = 5) -> str:
    unique = np.unique(values)
    shown = ", ".join(str(v) for v in unique[:limit])
    return f"{{{shown}{', ...' if unique.size > limit else ''}}}"


def check_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Validate a confusion matrix against its class names; return it as an int64 array.

    Raises ValueError unless ``matrix`` is a square integer array of non-negative counts with
    one row per name in ``class_names``.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square (N, N), got shape {matrix.shape}")
    if matrix.shape[0] != len(class_names):
        raise ValueError(
            f"the confusion matrix has {matrix.shape[0]} classes but {len(class_names)} class "
            "names were given; pass one name per row"
        )
    if not np.issubdtype(matrix.dtype, np.integer):
        raise ValueError(
            f"a confusion matrix holds pixel counts, got dtype {matrix.dtype}; pass the raw "
            "counts (from confusion_matrix), not a normalised matrix"
        )
    if (matrix < 0).any():
        raise ValueError("a confusion matrix holds pixel counts and cannot have negative entries")
    return matrix.astype(np.int64, copy=False)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise float64 division, NaN where the denominator is zero."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean over the non-NaN entries; NaN (without numpy's warning) when there are none."""
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class and mean scores of one evaluation; fractions in ``[0, 1]``, NaN = undefined.

    Per-class arrays are read-only float64 of shape ``(N,)`` in ``class_names`` order (pixel
    counts are int64). See the module docstring for when each score is NaN.

    Attributes:
        class_names: the N class names.
        iou: intersection over union, ``TP / (TP + FP + FN)``.
        acc: accuracy as MMSeg names it, i.e. recall, ``TP / (TP + FN)``.
        dice: ``2 TP / (2 TP + FP + FN)``; this is also the F1 score.
        precision: ``TP / (TP + FP)``.
        gt_pixels: ground-truth pixels per class (confusion row sums).
        pred_pixels: predicted pixels per class (confusion column sums).
        aacc: overall pixel accuracy, correct pixels / counted pixels.
        miou, macc, mdice, mprecision: NaN-skipping means of the per-class scores.
    """

    class_names: tuple[str, ...]
    iou: np.ndarray
    acc: np.ndarray
    dice: np.ndarray
    precision: np.ndarray
    gt_pixels: np.ndarray
    pred_pixels: np.ndarray
    aacc: float
    miou: float
    macc: float
    mdice: float
    mprecision: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary in percent (MMSeg's unit and key names); NaN becomes None.

        Layout: ``{"unit": "percent", "aAcc", "mIoU", "mAcc", "mDice", "mPrecision",
        "per_class": [{"class", "IoU", "Acc", "Dice", "Precision", "gt_pixels",
        "pred_pixels"}, ...]}``; values are not rounded.
        """

        def percent(value: float) -> float | None:
            return None if np.isnan(value) else float(value) * 100.0

        per_class = [
            {
                "class": name,
                "IoU": percent(self.iou[i]),
                "Acc": percent(self.acc[i]),
                "Dice": percent(self.dice[i]),
                "Precision": percent(self.precision[i]),
                "gt_pixels": int(self.gt_pixels[i]),
                "pred_pixels": int(self.pred_pixels[i]),
            }
            for i, name in enumerate(self.class_names)
        ]
        return {
            "unit": "percent",
            "aAcc": percent(self.aacc),
            "mIoU": percent(self.miou),
            "mAcc": percent(self.macc),
            "mDice": percent(self.mdice),
            "mPrecision": percent(self.mprecision),
            "per_class": per_class,
        }

    def format_table(self) -> str:
        """Text table like MMSeg's "per class results" (IoU and Acc in percent, 2 decimals),
        followed by a summary line with aAcc, mIoU and mAcc."""
        header = ("Class", "IoU", "Acc")
        rows = [
            (name, _percent_text(self.iou[i]), _percent_text(self.acc[i]))
            for i, name in enumerate(self.class_names)
        ]
        widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
        rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

        def line(cells: Sequence[str]) -> str:
            padded = (f" {cell:^{width}} " for cell, width in zip(cells, widths, strict=True))
            return "|" + "|".join(padded) + "|"

        summary = "  ".join(
            f"{key}: {_percent_text(value)}"
            for key, value in (("aAcc", self.aacc), ("mIoU", self.miou), ("mAcc", self.macc))
        )
        return "\n".join([rule, line(header), rule, *map(line, rows), rule, summary])


def _percent_text(value: float) -> str:
    return "nan" if np.isnan(value) else f"{value * 100:.2f}"


def scores_from_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> SegmentationScores:
    """Compute :class:`SegmentationScores` from an ``(N, N)`` confusion matrix of counts.

    Rows are ground truth, columns predictions (as :func:`confusion_matrix` returns).
    """
    matrix = check_confusion(matrix, class_names)
    true_positive = np.diag(matrix).astype(np.float64)
    gt_pixels = matrix.sum(axis=1)
    pred_pixels = matrix.sum(axis=0)
    union = gt_pixels + pred_pixels - true_positive
    iou = _ratio(true_positive, union)
    acc = _ratio(true_positive, gt_pixels)
    dice = _ratio(2 * true_positive, gt_pixels + pred_pixels)
    precision = _ratio(true_positive, pred_pixels)
    total = matrix.sum()
    return SegmentationScores(
        class_names=tuple(class_names),
        iou=_readonly(iou),
        acc=_readonly(acc),
        dice=_readonly(dice),
        precision=_readonly(precision),
        gt_pixels=_readonly(gt_pixels),
        pred_pixels=_readonly(pred_pixels),
        aacc=float(true_positive.sum() / total) if total else float("nan"),
        miou=_nanmean(iou),
        macc=_nanmean(acc),
        mdice=_nanmean(dice),
        mprecision=_nanmean(precision),
    )


def normalized_confusion(
    matrix: np.ndarray, by: Literal["true", "pred", "all"] = "true"
) -> np.ndarray:
    """Normalise a confusion matrix of counts to float64 fractions.

    Args:
        matrix: ``(N, N)`` counts, rows ground truth, columns predictions.
        by: ``"true"``: each row sums to 1 (entry = share of a true class's pixels predicted
            as each class; the diagonal is the recall); ``"pred"``: each column sums to 1
            (the diagonal is the precision); ``"all"``: the whole matrix sums to 1.

    Returns:
        float64 ``(N, N)``; rows (columns, matrix) without any pixel are all zeros, not NaN.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square (N, N), got shape {matrix.shape}")
    if by == "true":
        totals = matrix.sum(axis=1, keepdims=True)
    elif by == "pred":
        totals = matrix.sum(axis=0, keepdims=True)
    elif by == "all":
        totals = matrix.sum(keepdims=True)
    else:
        raise ValueError(f'by must be "true", "pred" or "all", got {by!r}')
    out = np.zeros(matrix.shape)
    np.divide(matrix, totals, out=out, where=totals != 0)
    return out
