"""fiftyone_plugin.iou_fields: per-sample mIoU and per-class IoU of two segmentation fields,
written as float fields, from masks on disk or inline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral_core.evaluation.metrics import confusion_matrix, scores_from_confusion
from fiftyone_plugin.iou_fields import class_iou_field, iou_fields, miou_field, write_iou_fields
from fiftyone_plugin.masks import write_mask

TARGETS = {0: "background", 1: "Acropora", 2: "Porites sp."}


@pytest.fixture
def dataset(fiftyone):
    dataset = fiftyone.Dataset()
    yield dataset
    dataset.delete()


def add(fo, dataset, folder: Path, name: str, gt: np.ndarray | None, pred: np.ndarray | None):
    """A sample whose ground truth is on disk (``mask_path``) and prediction inline."""
    fields = {}
    if gt is not None:
        fields["gt"] = fo.Segmentation(mask_path=write_mask(folder, name, gt))
    if pred is not None:
        fields["pred"] = fo.Segmentation(mask=pred)
    dataset.add_sample(fo.Sample(filepath=str(folder / f"{name}.jpg"), **fields))


def test_field_names_are_fiftyone_safe() -> None:
    assert miou_field("eval") == "eval_miou"
    assert class_iou_field("eval", "Porites sp.") == "eval_iou_Porites_sp"
    assert class_iou_field("eval", "--") == "eval_iou_class"


def test_iou_per_sample_and_per_class_with_masks_missing_or_of_another_size(
    fiftyone, dataset, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (8, 10), dtype=np.uint8)
    pred = gt.copy()
    pred[:4] = (pred[:4] + 1) % 3
    gt_ignored = gt.copy()
    gt_ignored[:, :5] = 255  # not counted
    only_background = np.zeros((6, 6), np.uint8)
    add(fiftyone, dataset, tmp_path, "a", gt, pred)
    add(fiftyone, dataset, tmp_path, "b", gt_ignored, pred)
    add(fiftyone, dataset, tmp_path, "c", only_background, only_background)
    add(fiftyone, dataset, tmp_path, "unlabelled", None, pred)
    add(fiftyone, dataset, tmp_path, "resized", gt, pred[:, :6])
    reports = []

    total = write_iou_fields(
        dataset, "ev", "pred", "gt", TARGETS, progress=lambda f, s: reports.append(f)
    )

    expected_a = scores_from_confusion(confusion_matrix(pred, gt, 3), list(TARGETS.values()))
    keep = gt_ignored != 255
    matrix_b = confusion_matrix(pred[keep], gt[keep], 3)
    expected_b = scores_from_confusion(matrix_b, list(TARGETS.values()))
    mious = dataset.values("ev_miou")
    assert mious[0] == pytest.approx(expected_a.miou)
    assert mious[1] == pytest.approx(expected_b.miou)
    assert mious[2] == 1.0
    assert mious[3:] == [None, None]
    porites = dataset.values(class_iou_field("ev", "Porites sp."))
    assert porites[0] == pytest.approx(expected_a.iou[2])
    assert porites[2:] == [None, None, None]  # absent from both masks, or nothing to compare
    assert dataset.values("ev_iou_background")[2] == 1.0
    np.testing.assert_array_equal(
        total, confusion_matrix(pred, gt, 3) + matrix_b + np.diag([36, 0, 0])
    )
    assert reports == [0.2]  # every tenth sample, counted from the first
    assert sorted(iou_fields(dataset, "ev")) == [
        "ev_iou_Acropora",
        "ev_iou_Porites_sp",
        "ev_iou_background",
        "ev_miou",
    ]


def test_predicted_values_outside_the_targets_are_misses(fiftyone, dataset, tmp_path) -> None:
    gt = np.ones((4, 4), np.uint8)
    add(fiftyone, dataset, tmp_path, "a", gt, np.full((4, 4), 7, np.uint8))
    total = write_iou_fields(dataset, "ev", "pred", "gt", TARGETS)
    assert total[1].tolist() == [16, 0, 0]  # counted as background, never as a hit
    assert dataset.values("ev_iou_Acropora") == [0.0]


def test_a_rerun_on_a_view_rewrites_only_the_view(fiftyone, dataset, tmp_path) -> None:
    gt = np.ones((4, 4), np.uint8)
    add(fiftyone, dataset, tmp_path, "hit", gt, gt)
    add(fiftyone, dataset, tmp_path, "miss", gt, np.zeros_like(gt))
    write_iou_fields(dataset, "ev", "pred", "gt", TARGETS)
    assert dataset.values("ev_miou") == [1.0, 0.0]
    miss = dataset.skip(1)
    miss.set_values("pred", [fiftyone.Segmentation(mask=gt)])
    write_iou_fields(miss, "ev", "pred", "gt", TARGETS)
    assert dataset.values("ev_miou") == [1.0, 1.0]
    empty = dataset.limit(0)
    assert write_iou_fields(empty, "ev", "pred", "gt", TARGETS).sum() == 0
    assert dataset.values("ev_miou") == [1.0, 1.0]
    assert iou_fields(dataset, "other") == []
