"""Colony metrics on shapes of known area, perimeter and diameter (tolerances as documented
in coral_core.ecology.colonies), and colonies from label and instance masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coral_core.ecology.colonies import (
    colonies_from_instances,
    colonies_from_labels,
    colony_columns,
    colony_rows,
    max_diameter,
    measure_colony,
    perimeter,
)
from coral_core.ecology.legend import ClassLegend
from coral_core.ecology.roi import roi_from_margin
from coral_core.inference.instances import CoralInstance
from coral_core.labels.taxonomy import EILAT, MaskEncoding

LEGEND = ClassLegend.from_encoding(MaskEncoding(EILAT, background_is_ignore=True))
ACROPORA = EILAT.classes.index("Acropora")
BARE = EILAT.classes.index("Bare-subst.")
IGNORE = 255


def disc(radius: float, centre=(0.3, 0.7)) -> np.ndarray:
    """Pixels whose centre lies within ``radius`` of a point off the pixel grid."""
    n = int(2 * radius + 8)
    rows, cols = np.mgrid[0:n, 0:n] + 0.5
    cx, cy = n / 2 + centre[0], n / 2 + centre[1]
    return (cols - cx) ** 2 + (rows - cy) ** 2 <= radius**2


def rotated_square(side: float, degrees: float) -> np.ndarray:
    n = int(side * 1.5 + 8)
    rows, cols = np.mgrid[0:n, 0:n] + 0.5
    x, y = cols - n / 2, rows - n / 2
    a = math.radians(degrees)
    u, v = x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)
    return (np.abs(u) < side / 2) & (np.abs(v) < side / 2)


@pytest.mark.parametrize("side", [20, 50, 200])
def test_axis_aligned_squares(side: int) -> None:
    mask = np.zeros((side + 10, side + 12), dtype=bool)
    mask[4 : 4 + side, 7 : 7 + side] = True
    colony = measure_colony(mask, 100, 50, "Acropora", ACROPORA)
    assert colony is not None
    assert colony.area == side * side
    # centres 4(s - 1), plus pi out to the pixel edges: 4s - 0.86, within 1.1% for s >= 20
    assert colony.perimeter == pytest.approx(4 * side - 4 + math.pi)
    assert colony.perimeter == pytest.approx(4 * side, rel=0.011)
    assert colony.max_diameter == pytest.approx(side * math.sqrt(2), abs=1e-9)
    assert colony.bbox == (107, 54, side, side)
    assert colony.centroid == pytest.approx((107 + side / 2, 54 + side / 2))


@pytest.mark.parametrize(("side", "degrees"), [(20, 30), (40, 15), (100, 45)])
def test_rotated_squares_within_three_percent(side: int, degrees: float) -> None:
    mask = rotated_square(side, degrees)
    assert perimeter(mask) == pytest.approx(4 * side, rel=0.03)
    assert mask.sum() == pytest.approx(side * side, rel=0.03)
    assert max_diameter(mask) == pytest.approx(side * math.sqrt(2), abs=1.5)


@pytest.mark.parametrize(("radius", "tolerance"), [(10, 0.02), (25, 0.01), (60, 0.01), (150, 0.01)])
def test_discs(radius: float, tolerance: float) -> None:
    mask = disc(radius)
    colony = measure_colony(mask, 0, 0, "Acropora", ACROPORA)
    assert colony is not None
    assert colony.area == pytest.approx(math.pi * radius**2, rel=tolerance)
    assert colony.perimeter == pytest.approx(2 * math.pi * radius, rel=tolerance)
    # the union of pixel squares reaches past the circle: 2r + 1.3 +- 0.1 px
    assert 2 * radius + 1.1 <= colony.max_diameter <= 2 * radius + 1.5
    centre = np.array([mask.shape[1] / 2 + 0.3, mask.shape[0] / 2 + 0.7])
    assert np.hypot(*(np.array(colony.centroid) - centre)) < 0.1  # digitisation


def test_holes_add_their_outline_and_remove_their_area() -> None:
    mask = np.zeros((60, 60), dtype=bool)
    mask[10:50, 10:50] = True
    mask[20:40, 20:40] = False
    assert mask.sum() == 1600 - 400
    assert perimeter(mask) == pytest.approx(4 * 40 + 4 * 20, rel=0.02)
    assert max_diameter(mask) == pytest.approx(40 * math.sqrt(2))


def test_single_pixel_and_empty_masks() -> None:
    one = np.zeros((3, 3), dtype=bool)
    one[1, 1] = True
    assert perimeter(one) == pytest.approx(math.pi)  # a disc of the pixel's area has 3.54
    assert max_diameter(one) == pytest.approx(math.sqrt(2))
    assert measure_colony(np.zeros((4, 4), dtype=bool), 0, 0, "x", 1) is None
    assert perimeter(np.zeros((4, 4), dtype=bool)) == 0.0
    assert max_diameter(np.zeros((4, 4), dtype=bool)) == 0.0


def labels_with_two_squares() -> np.ndarray:
    mask = np.full((40, 50), BARE, dtype=np.uint8)
    mask[5:15, 5:15] = ACROPORA
    mask[20:30, 25:40] = ACROPORA
    mask[0:3, 40:50] = IGNORE
    return mask


def test_colonies_from_labels_count_connected_regions_of_colony_classes() -> None:
    colonies = colonies_from_labels(labels_with_two_squares(), LEGEND)
    # bare substrate is a cover class: it has cover but no colonies
    assert [c.label for c in colonies] == ["Acropora", "Acropora"]
    assert [c.area for c in colonies] == [100, 150]
    assert [c.bbox for c in colonies] == [(5, 5, 10, 10), (25, 20, 15, 10)]
    assert not any(c.touches_edge for c in colonies)


def test_connectivity_and_min_area() -> None:
    mask = np.full((10, 10), BARE, dtype=np.uint8)
    mask[2:4, 2:4] = ACROPORA
    mask[4:6, 4:6] = ACROPORA  # touches the first at a corner only
    mask[8, 8] = ACROPORA
    assert len(colonies_from_labels(mask, LEGEND)) == 2
    assert len(colonies_from_labels(mask, LEGEND, connectivity=4)) == 3
    assert [c.area for c in colonies_from_labels(mask, LEGEND, min_area=2)] == [8]


def test_roi_cuts_colonies_and_flags_edges() -> None:
    mask = labels_with_two_squares()
    mask[0:8, 20:28] = ACROPORA  # at the image's top border
    roi = roi_from_margin(40, 50, 8)
    inside = colonies_from_labels(mask, LEGEND, roi=roi)
    # the first square is cut to rows and columns 8..14; the one at the top lies outside
    assert sorted(c.area for c in inside) == [7 * 7, 150]
    assert {c.area: c.touches_edge for c in inside} == {49: True, 150: False}
    whole = colonies_from_labels(mask, LEGEND)
    assert {c.bbox: c.touches_edge for c in whole}[(20, 0, 8, 8)] is True


def test_colonies_from_instances_keep_parts_together_and_skip_cover_classes() -> None:
    two_parts = np.zeros((10, 20), dtype=bool)
    two_parts[0:4, 0:4] = True
    two_parts[6:10, 16:20] = True
    bare = np.ones((5, 5), dtype=bool)
    instances = [
        CoralInstance("Acropora", ACROPORA, 0.9, (30, 40, 20, 10), two_parts, 32),
        CoralInstance("Bare-subst.", BARE, 0.8, (0, 0, 5, 5), bare, 25),
    ]
    colonies = colonies_from_instances(instances, LEGEND, image_size=(100, 100), outline=True)
    assert len(colonies) == 1
    colony = colonies[0]
    assert colony.area == 32 and colony.score == pytest.approx(0.9)
    assert colony.bbox == (30, 40, 20, 10)
    assert colony.max_diameter == pytest.approx(math.hypot(20, 10))
    assert colony.perimeter == pytest.approx(2 * (4 * 4 - 4 + math.pi))  # both outlines
    assert len(colony.outline) == 2
    assert colony.outline[0].exterior[:, 0].min() >= 30


def test_outlines_are_in_image_coordinates() -> None:
    mask = np.full((30, 30), BARE, dtype=np.uint8)
    mask[10:20, 5:15] = ACROPORA
    (colony,) = colonies_from_labels(mask, LEGEND, outline=True)
    (polygon,) = colony.outline
    assert polygon.bbox == pytest.approx((5.25, 10.25, 14.75, 19.75))


def test_colony_rows_in_pixels_and_cm() -> None:
    colonies = colonies_from_labels(labels_with_two_squares(), LEGEND)
    rows = colony_rows("reef_01", colonies, {"site": "A"}, ["site"], pixels_per_cm=5.0)
    assert list(rows[0]) == colony_columns(["site"], scaled=True)
    assert rows[0]["colony"] == 1 and rows[1]["colony"] == 2
    assert rows[0]["area_cm2"] == 100 / 25
    assert rows[0]["perimeter_cm"] == pytest.approx(rows[0]["perimeter_px"] / 5, abs=1e-3)
    assert rows[0]["score"] == ""
    unscaled = colony_rows("reef_01", colonies, with_scale_columns=True)
    assert unscaled[0]["area_cm2"] == "" and "site" not in unscaled[0]


def test_colonies_from_the_predictors_instances() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:5, 2:8] = True
    instance = CoralInstance(
        label="Acropora", value=ACROPORA, score=0.75, bbox=(10, 20, 8, 6), mask=mask, area=24
    )
    (colony,) = colonies_from_instances([instance], LEGEND, image_size=(100, 100))
    assert colony.area == 24 and colony.bbox == (12, 21, 6, 4) and colony.score == 0.75
