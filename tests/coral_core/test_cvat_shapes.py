"""CVAT encodings of colonies: each decodes back to the colony with CVAT's own rules."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.formats.cvat_shapes import (
    cvat_mask_points,
    cvat_shapes,
    label_spec,
    nuclio_detections,
    polygon_points,
)
from coral_core.formats.polygons import Polygon, polygons_to_mask
from coral_core.formats.rle import cvat_points_to_mask
from coral_core.inference.instances import CoralInstance, InstanceResult, TwoStageResult
from coral_core.labels.taxonomy import EILAT, MaskEncoding

H, W = 30, 40


def _colony(score: float = 0.8) -> CoralInstance:
    mask = np.ones((8, 10), bool)  # tight in its box, as colonies are
    mask[0, :3] = False
    mask[3:5, 4:6] = False  # a hole
    return CoralInstance("Acropora", 4, score, (12, 5, 10, 8), mask, int(mask.sum()))


def _result(*instances: CoralInstance) -> TwoStageResult:
    empty = np.zeros((H, W), np.uint8)
    return TwoStageResult(empty, InstanceResult(tuple(instances), empty, empty))


def test_label_spec_lists_colony_classes_only() -> None:
    spec = label_spec(MaskEncoding(EILAT))
    names = [item["name"] for item in spec]
    assert "Acropora" in names and "Bare-subst." not in names and len(names) == 7
    assert len({item["id"] for item in spec}) == len(spec)
    assert all(item["type"] == "mask" for item in spec)


def test_mask_points_decode_to_the_colony() -> None:
    colony = _colony()
    decoded = cvat_points_to_mask(cvat_mask_points(colony), H, W)
    assert np.array_equal(decoded, colony.full_mask(H, W))


def test_polygon_rasterizes_to_the_colony_without_its_hole() -> None:
    colony = _colony()
    points = np.array(polygon_points(colony)).reshape(-1, 2)
    filled = polygons_to_mask([Polygon(points)], H, W)
    outline = colony.full_mask(H, W)
    outline[8:10, 16:18] = True  # CVAT polygons have no holes
    assert np.array_equal(filled, outline)


def test_nuclio_detection_items() -> None:
    strong, weak = _colony(0.8), _colony(0.3)
    items = nuclio_detections(_result(strong, weak), threshold=0.5)
    (item,) = items
    assert item["label"] == "Acropora" and item["type"] == "mask"
    assert float(item["confidence"]) == pytest.approx(0.8)
    *pixels, xtl, ytl, xbr, ybr = item["mask"]
    assert (xtl, ytl, xbr, ybr) == (12, 5, 21, 12)
    box = np.array(pixels).reshape(ybr - ytl + 1, xbr - xtl + 1)
    assert set(np.unique(box)) == {0, 255} and np.array_equal(box == 255, strong.mask)
    assert len(item["points"]) >= 6
    assert len(nuclio_detections(_result(strong, weak))) == 2


def test_shapes_as_polygons_or_masks() -> None:
    result = _result(_colony())
    (polygon,) = cvat_shapes(result, conv_mask_to_poly=True)
    (mask,) = cvat_shapes(result, conv_mask_to_poly=False)
    assert polygon.type == "polygon" and mask.type == "mask"
    assert mask.points[-4:] == [12, 5, 21, 12]
    with pytest.raises(ValueError, match="threshold"):
        cvat_shapes(result, True, threshold=1.5)
