"""CoralIoUMetric against MMSeg's own IoUMetric, fed the same SegDataSamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from coral_core.evaluation.metrics import confusion_matrix
from coral_core.models.metric import CoralIoUMetric

CLASSES = ("Acropora", "Pocillopora", "Porites", "Montipora", "Pavona", "Fungia", "Other")
ABSENT = 5  # neither labelled nor predicted
ONLY_PREDICTED = 6  # predicted, never labelled: IoU 0, Acc NaN
ONLY_LABELLED = 4  # labelled, never predicted: IoU 0, Acc 0


def make_samples(seed: int, count: int) -> list[SegDataSample]:
    """Noisy predictions of random blocky label maps of assorted sizes, ~15% ignore pixels."""
    rng = np.random.default_rng(seed)
    labelled = [c for c in range(len(CLASSES)) if c not in (ABSENT, ONLY_PREDICTED)]
    predicted = [c for c in range(len(CLASSES)) if c not in (ABSENT, ONLY_LABELLED)]
    samples = []
    for _ in range(count):
        height, width = rng.integers(8, 40, size=2)
        blocks = rng.choice(labelled, size=(height // 4 + 1, width // 4 + 1))
        label = np.kron(blocks, np.ones((4, 4), dtype=np.int64))[:height, :width]
        pred = np.where(label == ONLY_LABELLED, ONLY_PREDICTED, label)
        noise = rng.random(label.shape) < 0.3
        pred = np.where(noise, rng.choice(predicted, size=label.shape), pred)
        label = np.where(rng.random(label.shape) < 0.15, 255, label).astype(np.uint8)
        sample = SegDataSample()
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred[None]))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label[None]))
        samples.append(sample)
    return samples


def evaluate(metric, samples: list[SegDataSample], size: int | None = None) -> dict:
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = {"classes": CLASSES}
    for start in range(0, len(samples), 3):  # batches of 3, like a val loop
        evaluator.process(data_samples=samples[start : start + 3])
    return evaluator.evaluate(len(samples) if size is None else size)


def mmseg_per_class(samples: list[SegDataSample]) -> dict[str, np.ndarray]:
    """MMSeg's unrounded per-class scores and aAcc, from its own static helpers."""
    areas = [
        IoUMetric.intersect_and_union(
            s.pred_sem_seg.data.squeeze(),
            s.gt_sem_seg.data.squeeze().to(s.pred_sem_seg.data),
            len(CLASSES),
            255,
        )
        for s in samples
    ]
    totals = [sum(area[i] for area in areas) for i in range(4)]
    return IoUMetric.total_area_to_metrics(*totals, metrics=["mIoU", "mDice", "mFscore"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_numbers_as_mmseg_iou_metric(seed: int) -> None:
    samples = make_samples(seed, count=7)
    expected = evaluate(IoUMetric(), samples)
    metric = CoralIoUMetric()
    got = evaluate(metric, samples)

    assert list(got) == list(expected) == ["aAcc", "mIoU", "mAcc"]
    for key, value in expected.items():
        assert got[key] == pytest.approx(float(value), rel=1e-6), key

    scores = metric.last_scores
    reference = mmseg_per_class(samples)
    np.testing.assert_allclose(scores.iou, reference["IoU"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scores.acc, reference["Acc"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scores.precision, reference["Precision"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scores.dice, reference["Dice"], rtol=1e-6, atol=1e-6)
    assert scores.aacc == pytest.approx(float(reference["aAcc"]), rel=1e-6)
    assert np.isnan(scores.iou[ABSENT]) and np.isnan(scores.acc[ABSENT])
    assert scores.iou[ONLY_PREDICTED] == 0 and np.isnan(scores.acc[ONLY_PREDICTED])
    assert scores.iou[ONLY_LABELLED] == 0 and scores.acc[ONLY_LABELLED] == 0


def test_dice_matches_mmseg_mdice() -> None:
    samples = make_samples(3, count=4)
    expected = evaluate(IoUMetric(iou_metrics=["mDice"]), samples)
    metric = CoralIoUMetric()
    evaluate(metric, samples)
    assert round(metric.last_scores.mdice * 100, 2) == pytest.approx(float(expected["mDice"]))


def test_padded_samples_are_dropped_like_mmseg() -> None:
    # a distributed sampler pads the last batch; evaluate(size) keeps the first `size` samples
    samples = make_samples(4, count=6)
    expected = evaluate(IoUMetric(), samples, size=4)
    metric = CoralIoUMetric()
    got = evaluate(metric, samples, size=4)
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-6)
    counted = sum(
        confusion_matrix(s.pred_sem_seg.data[0].numpy(), s.gt_sem_seg.data[0].numpy(), 7)
        for s in samples[:4]
    )
    assert np.array_equal(metric.last_confusion, counted)


def test_keeps_the_confusion_matrix_and_writes_output_dir(tmp_path: Path) -> None:
    samples = make_samples(5, count=3)
    metric = METRICS.build(dict(type="CoralIoUMetric", output_dir=str(tmp_path / "eval")))
    assert isinstance(metric, CoralIoUMetric)
    got = evaluate(metric, samples)

    counted = sum(
        confusion_matrix(s.pred_sem_seg.data[0].numpy(), s.gt_sem_seg.data[0].numpy(), 7)
        for s in samples
    )
    assert metric.last_confusion.dtype == np.int64
    assert np.array_equal(metric.last_confusion, counted)
    assert metric.last_scores.class_names == CLASSES

    out = tmp_path / "eval"
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.csv",
        "confusion_matrix.png",
        "confusion_matrix_counts.csv",
        "metrics.json",
    ]
    report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert report["mIoU"] == pytest.approx(got["mIoU"], abs=0.005)
    assert report["confusion_matrix"] == counted.tolist()
    assert report["per_class"][ABSENT]["IoU"] is None


def test_ignore_index_argument() -> None:
    samples = make_samples(6, count=2)
    for sample in samples:  # mark ignored pixels with 250 instead of 255
        label = sample.gt_sem_seg.data
        sample.gt_sem_seg.data = torch.where(label == 255, torch.full_like(label, 250), label)
    expected = evaluate(IoUMetric(ignore_index=250), samples)
    got = evaluate(CoralIoUMetric(ignore_index=250), samples)
    assert got == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-6)
    # MMSeg would silently count 250 as a prediction-only pixel; this metric says what is wrong
    with pytest.raises(ValueError, match=r"label has values \{250\}"):
        evaluate(CoralIoUMetric(), samples)


def test_missing_dataset_meta_is_explained() -> None:
    metric = CoralIoUMetric()
    with pytest.raises(ValueError, match=r"dataset_meta\['classes'\]"):
        metric.process({}, [s.to_dict() for s in make_samples(0, count=1)])
