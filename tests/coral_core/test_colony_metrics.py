"""Colony metrics on constructed colonies whose PQ, counts and size distances are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coral_core.evaluation.colony_metrics import (
    ImageColonies,
    evaluate_colonies,
    ks_statistic,
    mask_iou,
    match_colonies,
)
from coral_core.inference.instances import CoralInstance


def colony(label: str, x: int, y: int, w: int, h: int) -> CoralInstance:
    """A filled ``w x h`` rectangle at ``(x, y)``."""
    return CoralInstance(label, 1, 1.0, (x, y, w, h), np.ones((h, w), bool), w * h)


def test_mask_iou_of_box_local_masks() -> None:
    a = colony("Acropora", 0, 0, 10, 10)
    b = colony("Acropora", 0, 2, 10, 10)  # 80 pixels shared, union 120
    assert mask_iou(a, b) == pytest.approx(80 / 120)
    assert mask_iou(a, colony("Acropora", 10, 0, 5, 5)) == 0.0
    ring = np.ones((10, 10), bool)
    ring[2:8, 2:8] = False  # a hole: a colony inside it shares no pixel
    holed = CoralInstance("Acropora", 1, 1.0, (0, 0, 10, 10), ring, int(ring.sum()))
    assert mask_iou(holed, colony("Acropora", 3, 3, 4, 4)) == 0.0


def test_matching_is_one_to_one_same_class_above_half() -> None:
    true = [colony("Acropora", 0, 0, 10, 10), colony("Porites", 20, 0, 10, 10)]
    predicted = [
        colony("Acropora", 0, 0, 10, 8),  # IoU 0.8 with the first
        colony("Acropora", 0, 0, 10, 9),  # IoU 0.9: takes the match
        colony("Acropora", 20, 0, 10, 10),  # right place, wrong genus
    ]
    assert match_colonies(predicted, true) == [(1, 0, pytest.approx(0.9))]


def test_panoptic_quality_counts_and_sizes_of_a_known_scene() -> None:
    # Image 1: Acropora matched at IoU 0.8, a missed Acropora, a false Porites.
    first = ImageColonies(
        "q1",
        predicted=[colony("Acropora", 0, 0, 10, 8), colony("Porites", 50, 50, 5, 5)],
        true=[colony("Acropora", 0, 0, 10, 10), colony("Acropora", 20, 0, 10, 10)],
    )
    # Image 2: one Porites matched exactly; two predicted Acropora where one is drawn.
    second = ImageColonies(
        "q2",
        predicted=[
            colony("Porites", 0, 0, 20, 10),
            colony("Acropora", 40, 0, 10, 5),
            colony("Acropora", 40, 5, 10, 5),
        ],
        true=[colony("Porites", 0, 0, 20, 10), colony("Acropora", 40, 0, 10, 10)],
    )
    result = evaluate_colonies([first, second], classes=["Acropora", "Porites", "Montipora"])
    acropora, porites = result.per_class["Acropora"], result.per_class["Porites"]
    # Acropora: TP 1 (IoU 0.8), FP 2 (the halves have IoU 0.5, not above), FN 2
    assert (acropora.tp, acropora.fp, acropora.fn) == (1, 2, 2)
    assert acropora.sq == pytest.approx(0.8)
    assert acropora.rq == pytest.approx(1 / (1 + 1 + 1))
    assert acropora.pq == pytest.approx(0.8 / 3)
    # Porites: TP 1 (IoU 1), FP 1
    assert porites.pq == pytest.approx(1 / 1.5) and porites.sq == 1.0
    # Montipora has no colony on either side: no PQ, and it does not count in the mean
    assert math.isnan(result.per_class["Montipora"].pq)
    assert result.pq == pytest.approx((0.8 / 3 + 1 / 1.5) / 2)
    # counts: image 1 predicts 2 for 2 drawn, image 2 predicts 3 for 2
    assert [i.count_error for i in result.images] == [0, 1]
    assert result.mean_abs_count_error == pytest.approx(0.5)
    assert result.max_relative_count_error == pytest.approx(0.5)
    assert result.class_count_error("Acropora") == 1.0  # 1 for 2 drawn, then 2 for 1
    # image PQ: mean over its classes
    assert result.images[0].pq == pytest.approx((0.8 / 1.5) / 2)  # Acropora 0.8/1.5, Porites 0
    # sizes: Acropora predicted areas 80, 50, 50 vs true 100, 100, 100 -> disjoint, D = 1
    assert result.size_ks["Acropora"] == 1.0
    assert result.area_unit == "px"
    rows = {row["class"]: row for row in result.rows()}
    assert rows["all"]["predicted"] == 5 and rows["all"]["true"] == 4
    assert rows["Porites"]["pq"] == pytest.approx(66.67)
    table = result.format_table()
    assert "Acropora" in table and "66.67" in table and "n/a" in table
    assert "PQ 46.67" in result.summary_line()


def test_sizes_in_square_centimetres_when_every_image_has_a_scale() -> None:
    scene = ImageColonies(
        "q", [colony("Porites", 0, 0, 20, 20)], [colony("Porites", 0, 0, 10, 10)], 10.0
    )
    result = evaluate_colonies([scene])
    assert result.area_unit == "cm2"
    assert result.size_ks["Porites"] == 1.0
    assert evaluate_colonies([scene, ImageColonies("n", [], [])]).area_unit == "px"


def test_ks_statistic() -> None:
    assert ks_statistic([100, 200, 300], [100, 200]) == pytest.approx(1 / 3)
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1], [5]) == 1.0
    assert math.isnan(ks_statistic([], [1]))


def test_bad_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="matching IoU"):
        evaluate_colonies([], threshold=1.5)
