from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from coral_core.evaluation.metrics import (
    SegmentationScores,
    check_confusion,
    confusion_matrix,
    normalized_confusion,
    scores_from_confusion,
)

NAMES = ("Acropora", "Pocillopora", "Porites", "Montipora")

# 2x3 image, class 3 absent from both maps, one ignored pixel (whose prediction is not read).
LABEL = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
PRED = np.array([[0, 1, 1], [1, 0, 99]], dtype=np.int64)
# rows = ground truth, columns = prediction
EXPECTED = np.array([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def brute_force_confusion(pred: np.ndarray, label: np.ndarray, n: int, ignore: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(label.ravel().tolist(), pred.ravel().tolist(), strict=True):
        if t != ignore:
            matrix[t, p] += 1
    return matrix


def test_confusion_matrix_of_a_known_image() -> None:
    matrix = confusion_matrix(PRED, LABEL, num_classes=4)
    assert matrix.dtype == np.int64 and matrix.shape == (4, 4)
    assert np.array_equal(matrix, EXPECTED)


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_matches_a_pixel_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    label = rng.integers(0, n, size=(17, 23)).astype(np.uint8)
    label[rng.random(label.shape) < 0.2] = 255
    pred = rng.integers(0, n, size=label.shape)
    assert np.array_equal(
        confusion_matrix(pred, label, n), brute_force_confusion(pred, label, n, 255)
    )


def test_custom_ignore_index_and_signed_maps() -> None:
    label = np.array([[-1, 0], [1, 1]], dtype=np.int32)
    pred = np.array([[5, 1], [1, 0]], dtype=np.int16)
    matrix = confusion_matrix(pred, label, num_classes=2, ignore_index=-1)
    assert matrix.tolist() == [[0, 1], [1, 1]]


def test_all_pixels_ignored_gives_zeros() -> None:
    label = np.full((4, 4), 255, dtype=np.uint8)
    assert not confusion_matrix(np.zeros_like(label), label, 3).any()


@pytest.mark.parametrize(
    ("pred", "label", "num_classes", "message"),
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), 2, "shape"),
        (np.zeros((2, 2), float), np.zeros((2, 2), int), 2, "integer class ids"),
        (np.zeros((2, 2), int), np.zeros((2, 2), bool), 2, "integer class ids"),
        (np.zeros((2, 2), int), np.full((2, 2), 7), 2, r"label has values \{7\}"),
        (np.full((2, 2), -1), np.zeros((2, 2), int), 2, r"pred has values \{-1\}"),
        (np.zeros((2, 2), int), np.zeros((2, 2), int), 0, "at least 1"),
        (np.zeros((2, 2), int), np.zeros((2, 2), int), 2.0, "must be an int"),
    ],
)
def test_confusion_matrix_rejects_bad_input(pred, label, num_classes, message) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(pred, label, num_classes)


def test_scores_of_a_known_matrix() -> None:
    scores = scores_from_confusion(EXPECTED, NAMES)
    assert isinstance(scores, SegmentationScores)
    nan = math.nan
    # TP = [1, 2, 0, 0], GT = [2, 2, 1, 0], predicted = [2, 3, 0, 0]
    np.testing.assert_allclose(scores.iou, [1 / 3, 2 / 3, 0, nan])
    np.testing.assert_allclose(scores.acc, [1 / 2, 1, 0, nan])
    np.testing.assert_allclose(scores.dice, [2 / 4, 4 / 5, 0, nan])
    np.testing.assert_allclose(scores.precision, [1 / 2, 2 / 3, nan, nan])
    assert scores.gt_pixels.tolist() == [2, 2, 1, 0]
    assert scores.pred_pixels.tolist() == [2, 3, 0, 0]
    assert scores.aacc == pytest.approx(3 / 5)
    # the absent class is left out of every mean, the never-predicted one only of mPrecision
    assert scores.miou == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert scores.macc == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert scores.mdice == pytest.approx((1 / 2 + 4 / 5 + 0) / 3)
    assert scores.mprecision == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert scores.class_names == NAMES


def test_predicted_but_absent_class_scores_zero_iou_and_nan_acc() -> None:
    # class 1 has no ground truth but is predicted once: IoU 0 (counted), Acc NaN (skipped)
    scores = scores_from_confusion(np.array([[3, 1], [0, 0]]), ("a", "b"))
    assert scores.iou.tolist()[1] == 0.0 and math.isnan(scores.acc[1])
    assert scores.miou == pytest.approx((3 / 4 + 0) / 2)
    assert scores.macc == pytest.approx(3 / 4)


def test_scores_are_read_only_and_frozen() -> None:
    scores = scores_from_confusion(EXPECTED, NAMES)
    with pytest.raises(ValueError, match="read-only"):
        scores.iou[0] = 1.0
    with pytest.raises(AttributeError):
        scores.miou = 1.0  # type: ignore[misc]


def test_empty_matrix_gives_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = scores_from_confusion(np.zeros((3, 3), dtype=np.int64), ("a", "b", "c"))
    assert all(math.isnan(v) for v in (scores.aacc, scores.miou, scores.macc, scores.mdice))
    assert np.isnan(scores.iou).all()


def test_to_dict_is_json_safe_in_percent() -> None:
    data = scores_from_confusion(EXPECTED, NAMES).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["unit"] == "percent"
    assert data["mIoU"] == pytest.approx(100 / 3)
    assert data["aAcc"] == pytest.approx(60.0)
    assert [row["class"] for row in data["per_class"]] == list(NAMES)
    absent = data["per_class"][3]
    assert absent == {
        "class": "Montipora",
        "IoU": None,
        "Acc": None,
        "Dice": None,
        "Precision": None,
        "gt_pixels": 0,
        "pred_pixels": 0,
    }
    assert data["per_class"][2]["Precision"] is None and data["per_class"][2]["IoU"] == 0.0


def test_format_table_looks_like_mmseg() -> None:
    table = scores_from_confusion(EXPECTED, NAMES).format_table()
    lines = table.splitlines()
    assert lines[0].startswith("+--") and lines[0] == lines[2] == lines[-2]
    assert [cell.strip() for cell in lines[1].strip("|").split("|")] == ["Class", "IoU", "Acc"]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[3:-2]]
    assert rows == [
        ["Acropora", "33.33", "50.00"],
        ["Pocillopora", "66.67", "100.00"],
        ["Porites", "0.00", "0.00"],
        ["Montipora", "nan", "nan"],
    ]
    assert len({len(line) for line in lines[:-1]}) == 1  # aligned columns
    assert lines[-1] == "aAcc: 60.00  mIoU: 33.33  mAcc: 50.00"


@pytest.mark.parametrize(
    ("matrix", "names", "message"),
    [
        (np.zeros((2, 3), int), ("a", "b"), "square"),
        (np.zeros((2, 2), int), ("a", "b", "c"), "3 class names"),
        (np.zeros((2, 2)), ("a", "b"), "pixel counts"),
        (np.array([[1, -1], [0, 0]]), ("a", "b"), "negative"),
    ],
)
def test_bad_confusion_matrices_are_rejected(matrix, names, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_confusion(matrix, names)
    with pytest.raises(ValueError, match=message):
        scores_from_confusion(matrix, names)


def test_normalized_confusion() -> None:
    by_true = normalized_confusion(EXPECTED, by="true")
    assert by_true.dtype == np.float64
    np.testing.assert_allclose(by_true.sum(axis=1), [1, 1, 1, 0])  # empty row: zeros, not NaN
    np.testing.assert_allclose(np.diag(by_true), [1 / 2, 1, 0, 0])  # the diagonal is recall
    by_pred = normalized_confusion(EXPECTED, by="pred")
    np.testing.assert_allclose(by_pred.sum(axis=0), [1, 1, 0, 0])
    np.testing.assert_allclose(np.diag(by_pred), [1 / 2, 2 / 3, 0, 0])  # precision
    np.testing.assert_allclose(normalized_confusion(EXPECTED, by="all"), EXPECTED / 5)
    assert not normalized_confusion(np.zeros((2, 2), int), by="all").any()
    with pytest.raises(ValueError, match='"true", "pred" or "all"'):
        normalized_confusion(EXPECTED, by="rows")  # type: ignore[arg-type]
