"""CVAT shapes -> normalised polyline specs (:mod:`coral_core.formats.cvat_polylines`)."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.formats.cvat_polylines import normalize_points, shape_to_polylines
from tests.fake_cvat import encode_mask


def test_normalize_points_divides_by_the_frame_size() -> None:
    assert normalize_points([0, 0, 64, 48, 32.5, 12], 64, 48) == [
        (0.0, 0.0),
        (1.0, 1.0),
        (32.5 / 64, 0.25),
    ]
    with pytest.raises(ValueError, match="pairs"):
        normalize_points([1, 2, 3], 10, 10)


class _Shape:
    def __init__(self, type: str, points: list[float]) -> None:
        self.type, self.points = type, points
        self.id, self.z_order, self.occluded = 7, 0, False


def test_shape_to_polylines_per_type() -> None:
    (polygon,) = shape_to_polylines(_Shape("polygon", [0, 0, 4, 0, 4, 4]), "A", 4, 4)
    assert (polygon.closed, polygon.filled, polygon.points) == (
        True,
        True,
        [[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]],
    )
    (line,) = shape_to_polylines(_Shape("polyline", [0, 0, 2, 2]), "A", 4, 4)
    assert (line.closed, line.filled) == (False, False)
    bitmap = np.zeros((4, 6), dtype=bool)
    bitmap[1:3, 1:3] = bitmap[0, 5] = True
    parts = shape_to_polylines(_Shape("mask", encode_mask(bitmap)), "A", 6, 4, 0.0)
    assert len(parts) == 2 and all(p.attributes["cvat_shape_type"] == "mask" for p in parts)
    for bad in (_Shape("rectangle", [0, 0, 1, 1]), _Shape("polygon", [0, 0, 1, 1])):
        with pytest.raises(ValueError):
            shape_to_polylines(bad, "A", 4, 4)
