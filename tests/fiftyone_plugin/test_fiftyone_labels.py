"""fiftyone_plugin.fiftyone_labels: coral_core polygons and label masks as FiftyOne polylines,
read back the way coralseg rasterizes them."""

from __future__ import annotations

import numpy as np

from coral_core.formats.polygons import Polygon, polygons_to_mask
from fiftyone_plugin.fiftyone_labels import polygon_to_polyline, semantic_mask_to_polylines

W, H = 20, 16


def back_to_pixels(polyline) -> Polygon:
    scale = np.array([W, H], dtype=float)
    rings = [np.array(ring) * scale for ring in polyline.points]
    return Polygon(rings[0], tuple(rings[1:]))


def test_a_polygon_with_a_hole_is_one_filled_polyline(fiftyone) -> None:
    outer = np.array([[2, 2], [18, 2], [18, 14], [2, 14]], dtype=float)
    hole = np.array([[6, 6], [12, 6], [12, 10], [6, 10]], dtype=float)
    polyline = polygon_to_polyline(Polygon(outer, (hole,)), "Porites", W, H, cvat_shape_id=7)
    assert isinstance(polyline, fiftyone.Polyline)
    assert (polyline.label, polyline.closed, polyline.filled) == ("Porites", True, True)
    assert polyline.cvat_shape_id == 7
    assert polyline.points[0][1] == [18 / W, 2 / H]
    assert len(polyline.points) == 2  # the hole is the second shape
    drawn = polygons_to_mask([back_to_pixels(polyline)], H, W)
    assert drawn[8, 8] == 0 and drawn[3, 3] == 1


def test_a_label_mask_gives_one_polyline_per_region_and_rasterizes_back(fiftyone) -> None:
    mask = np.zeros((H, W), np.uint8)  # 0 background, 1 Acropora, 2 Porites, 255 ignore
    mask[1:6, 1:6] = 1
    mask[10:15, 12:19] = 1
    mask[1:8, 10:18] = 2
    mask[3:5, 13:15] = 0  # a hole in the Porites region
    mask[12:, :4] = 255
    polylines = semantic_mask_to_polylines(mask, ["Acropora", "Porites"], 1, tolerance=0.25)
    assert isinstance(polylines, fiftyone.Polylines)
    labels = [p.label for p in polylines.polylines]
    assert labels == ["Acropora", "Acropora", "Porites"]
    for value, name in ((1, "Acropora"), (2, "Porites")):
        polygons = [back_to_pixels(p) for p in polylines.polylines if p.label == name]
        np.testing.assert_array_equal(polygons_to_mask(polygons, H, W), mask == value)


def test_an_empty_mask_gives_no_polylines(fiftyone) -> None:
    mask = np.full((H, W), 255, np.uint8)
    assert semantic_mask_to_polylines(mask, ["Acropora"], 1).polylines == []
    assert semantic_mask_to_polylines(mask[:, :0], ["Acropora"]).polylines == []
