from __future__ import annotations

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.labels.rasterize import LabeledPolyline, rasterize_polylines

H, W = 20, 40
VALUES = {"Acropora": 1, "Porites": 2, "Pocillopora": 3}


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned rectangle with pixel-edge corners, normalised for a WxH image."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64) / (W, H)


def _poly(label: str, *rings: np.ndarray, closed: bool = True) -> LabeledPolyline:
    return LabeledPolyline(label, tuple(rings), closed)


def _expected(*boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    for x0, y0, x1, y1, value in boxes:
        mask[y0:y1, x0:x1] = value
    return mask


def test_rectangle_on_pixel_edges_covers_exactly_its_pixels() -> None:
    mask, report = rasterize_polylines([_poly("Acropora", _rect(2, 3, 10, 8))], H, W, VALUES)
    np.testing.assert_array_equal(mask, _expected((2, 3, 10, 8, 1)))
    assert report.regions_drawn == 1 and not report.dropped


def test_smaller_colony_stays_on_top_whatever_the_order() -> None:
    big = _poly("Acropora", _rect(0, 0, 20, 20))
    small = _poly("Porites", _rect(5, 5, 10, 10))
    expected = _expected((0, 0, 20, 20, 1), (5, 5, 10, 10, 2))
    for order in ([big, small], [small, big]):
        mask, _ = rasterize_polylines(order, H, W, VALUES)
        np.testing.assert_array_equal(mask, expected)


def test_equal_sizes_keep_annotation_order() -> None:
    first = _poly("Acropora", _rect(0, 0, 10, 10))
    second = _poly("Porites", _rect(5, 0, 15, 10))
    mask, _ = rasterize_polylines([first, second], H, W, VALUES)
    assert mask[5, 7] == 2  # the later annotation is painted last


def test_holes_and_islands_follow_even_odd() -> None:
    outer, hole, island = _rect(0, 0, 20, 20), _rect(5, 5, 15, 15), _rect(8, 8, 12, 12)
    mask, _ = rasterize_polylines([_poly("Acropora", outer, hole, island)], H, W, VALUES)
    np.testing.assert_array_equal(
        mask, _expected((0, 0, 20, 20, 1), (5, 5, 15, 15, 0), (8, 8, 12, 12, 1))
    )


def test_a_colony_inside_anothers_hole_keeps_its_label() -> None:
    ring = _poly("Acropora", _rect(0, 0, 20, 20), _rect(5, 5, 15, 15))
    inside = _poly("Porites", _rect(6, 6, 14, 14))
    mask, _ = rasterize_polylines([ring, inside], H, W, VALUES)
    assert mask[10, 10] == 2 and mask[5, 5] == 0 and mask[1, 1] == 1


def test_parts_outside_the_image_are_clipped() -> None:
    mask, report = rasterize_polylines(
        [_poly("Acropora", _rect(-10, -5, 5, 5)), _poly("Porites", _rect(35, 15, 60, 30))],
        H,
        W,
        VALUES,
    )
    np.testing.assert_array_equal(mask, _expected((0, 0, 5, 5, 1), (35, 15, 40, 20, 2)))
    assert report.regions_drawn == 2


def test_invalid_shapes_are_dropped_and_counted() -> None:
    polylines = [
        _poly("Acropora", np.array([[0.1, 0.1], [0.2, 0.2]])),  # two points
        _poly("Acropora", np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])),  # collinear
        _poly("Porites", np.array([[0.1, np.nan], [0.2, 0.2], [0.3, 0.1]])),
        _poly("Porites", _rect(50, 30, 60, 40)),  # entirely outside
        _poly("Porites", np.array([[0.5, 0.5], [0.5004, 0.5], [0.5, 0.5004]])),  # sub-pixel
        _poly("Pocillopora", np.array([[0.0, 0.0], [1.0, 0.0]]), closed=False),
        _poly("Acropora", _rect(0, 0, 4, 4)),
    ]
    mask, report = rasterize_polylines(polylines, H, W, VALUES)
    np.testing.assert_array_equal(mask, _expected((0, 0, 4, 4, 1)))
    assert report.regions_drawn == 1
    assert report.dropped == {
        "fewer than 3 points": 1,
        "zero area": 1,
        "non-finite coordinates": 1,
        "outside the image": 1,
        "covers no pixel": 1,
        "open polyline": 1,
    }


def test_unknown_labels_are_an_error_listing_them() -> None:
    polylines = [_poly("Sand", _rect(0, 0, 4, 4)), _poly("Sand", _rect(5, 0, 9, 4))]
    polylines.append(_poly("Isopora", _rect(10, 0, 14, 4)))
    with pytest.raises(CoralsegError, match=r"'Sand' \(2\), 'Isopora' \(1\)"):
        rasterize_polylines(polylines, H, W, VALUES)


def test_unknown_labels_can_be_skipped() -> None:
    polylines = [_poly("Sand", _rect(0, 0, 4, 4)), _poly("Porites", _rect(5, 0, 9, 4))]
    mask, report = rasterize_polylines(polylines, H, W, VALUES, unknown="skip")
    np.testing.assert_array_equal(mask, _expected((5, 0, 9, 4, 2)))
    assert report.unknown_labels == {"Sand": 1}


def test_background_value_and_output_size_follow_the_arguments() -> None:
    # the same normalised rectangle drawn at twice the size covers twice the pixels per side
    mask, _ = rasterize_polylines(
        [_poly("Acropora", _rect(2, 3, 10, 8))], 2 * H, 2 * W, VALUES, background=255
    )
    assert mask.shape == (2 * H, 2 * W)
    assert (mask == 1).sum() == 16 * 10
    assert (mask == 255).sum() == 4 * H * W - 160


def test_pixel_centre_rule() -> None:
    # a triangle whose edge passes between pixel centres: only centres inside count
    triangle = np.array([[0.0, 0.0], [4.5, 0.0], [0.0, 4.5]]) / (W, H)
    mask, _ = rasterize_polylines([_poly("Acropora", triangle)], H, W, VALUES)
    expected = np.zeros((H, W), np.uint8)
    for i in range(5):
        for j in range(5):
            if (j + 0.5) + (i + 0.5) < 4.5:
                expected[i, j] = 1
    np.testing.assert_array_equal(mask, expected)


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        rasterize_polylines([], 0, 10, VALUES)
