from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from coral_core.formats.polygons import (
    Polygon,
    as_ring,
    mask_to_polygons,
    polygon_window,
    polygons_to_mask,
    ring_area,
    validate_ring,
)


def grid(text: str) -> np.ndarray:
    """A bool mask drawn with '#' (foreground) and '.' (background), one row per word."""
    return np.array([[c == "#" for c in row] for row in text.split()], dtype=bool)


def round_trip(mask: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    return polygons_to_mask(mask_to_polygons(mask, tolerance=tolerance), *mask.shape)


def fiftyone_fill(polygons: list[Polygon], height: int, width: int) -> np.ndarray:
    """FiftyOne's rasterizer (``fiftyone.core.labels._render_polyline`` for filled
    polylines): coordinates normalised and scaled back, cast to int32, ``cv2.fillPoly``."""
    mask = np.zeros((height, width), dtype=np.uint8)
    scale = np.array([width, height], dtype=np.float64)
    for polygon in polygons:
        shapes = [
            (ring / scale * scale).astype(np.int32) for ring in (polygon.exterior, *polygon.holes)
        ]
        cv2.fillPoly(mask, shapes, 1)
    return mask.astype(bool)


def distances_to_rings(points: np.ndarray, rings: list[np.ndarray]) -> np.ndarray:
    """Distance of each ``(x, y)`` point to the nearest edge of any ring."""
    starts = np.concatenate(rings)
    edges = np.concatenate([np.roll(ring, -1, axis=0) for ring in rings]) - starts
    rel = points[:, None, :] - starts[None]
    t = np.clip((rel * edges).sum(-1) / (edges * edges).sum(-1), 0.0, 1.0)
    return np.linalg.norm(rel - t[..., None] * edges, axis=-1).min(axis=1)


def pixel_centres(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    return np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)


SHAPES = {
    "single pixel": grid("... .#. ..."),
    "square": grid("..... .###. .###. .###. ....."),
    "L-shape": grid("#.... #.... #.... ####."),
    "ring around an island": grid("####### #.....# #.....# #..#..# #.....# #.....# #######"),
    "nested rings": grid("####### #.....# #.###.# #.#.#.# #.###.# #.....# #######"),
    "horizontal line": grid("....... .#####. ......."),
    "vertical line": grid(".#. .#. .#. .#."),
    "diagonal": np.eye(5, dtype=bool),
    "anti-diagonal": np.eye(5, dtype=bool)[::-1],
    "diamond around a hole": grid(".#. #.# .#."),
    "checkerboard": np.indices((5, 6)).sum(axis=0) % 2 == 0,
    "full image": np.ones((3, 4), dtype=bool),
    "corners": grid("#..# .... #..#"),
    "staircase": np.tril(np.ones((6, 6), dtype=bool)),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("tolerance", [0.0, 0.5])
def test_known_shapes_round_trip_exactly(name: str, tolerance: float) -> None:
    mask = SHAPES[name]
    polygons = mask_to_polygons(mask, tolerance=tolerance)
    assert np.array_equal(polygons_to_mask(polygons, *mask.shape), mask)
    assert np.array_equal(fiftyone_fill(polygons, *mask.shape), mask)


@pytest.mark.parametrize(
    ("name", "holes_per_polygon"),
    [
        ("single pixel", [0]),
        ("L-shape", [0]),
        ("ring around an island", [1, 0]),
        ("nested rings", [1, 1]),  # the island has a hole of its own
        ("diagonal", [0]),  # diagonal-only contact is 8-connected: one region
        ("diamond around a hole", [1]),  # the hole is 4-connected background
        ("checkerboard", [6]),  # background pixels touch only diagonally: 4-connected holes
        ("corners", [0, 0, 0, 0]),
    ],
)
def test_regions_and_holes(name: str, holes_per_polygon: list[int]) -> None:
    polygons = mask_to_polygons(SHAPES[name], tolerance=0)
    assert sorted(len(p.holes) for p in polygons) == sorted(holes_per_polygon)


def test_exact_ring_runs_a_quarter_pixel_inside_the_pixel_edges() -> None:
    (polygon,) = mask_to_polygons(grid("..... .###. .##.. ....."), tolerance=0)
    # Pixels (1, 1..3) and (2, 1..2); the concave corner at (3, 2) is cut diagonally.
    expected = [(1.25, 1.25), (1.25, 2.75), (2.75, 2.75), (2.75, 2.25), (3.25, 1.75)]
    expected += [(3.75, 1.75), (3.75, 1.25)]
    assert [tuple(v) for v in polygon.exterior] == expected
    assert polygon.bbox == (1.25, 1.25, 3.75, 2.75)
    assert polygon.area == 2.875
    (pixel,) = mask_to_polygons(SHAPES["single pixel"], tolerance=0)
    assert (pixel.bbox, pixel.area) == ((1.25, 1.25, 1.75, 1.75), 0.25)


def test_diagonal_contact_runs_along_the_diagonal_and_back() -> None:
    (polygon,) = mask_to_polygons(np.eye(2, dtype=bool), tolerance=0)
    vertices = [tuple(v) for v in polygon.exterior]
    assert vertices.count((0.75, 0.75)) == vertices.count((1.25, 1.25)) == 2
    assert polygon.area == 0.5


def test_island_in_a_hole_is_its_own_polygon() -> None:
    mask = SHAPES["nested rings"]
    outer, island = sorted(mask_to_polygons(mask, tolerance=0), key=lambda p: -p.area)
    assert outer.bbox == (0.25, 0.25, 6.75, 6.75)
    assert outer.holes[0].min(axis=0).tolist() == [0.75, 0.75]  # just inside the ring's pixels
    assert island.bbox == (2.25, 2.25, 4.75, 4.75)
    assert island.holes[0].min(axis=0).tolist() == [2.75, 2.75]


@pytest.mark.parametrize("shape", [(3, 4), (4, 3), (4, 4)])
def test_every_small_mask_round_trips_exactly(shape: tuple[int, int]) -> None:
    count = shape[0] * shape[1]
    bits = np.arange(1 << count)[:, None] >> np.arange(count) & 1
    failures = []
    for mask in bits.astype(bool).reshape(-1, *shape):
        polygons = mask_to_polygons(mask, tolerance=0)
        pycocotools_ok = np.array_equal(polygons_to_mask(polygons, *shape), mask)
        if not (pycocotools_ok and np.array_equal(fiftyone_fill(polygons, *shape), mask)):
            failures.append(mask)
    assert failures == []


def test_random_masks_round_trip_with_margins() -> None:
    rng = np.random.default_rng(7)
    for _ in range(150):
        height, width = rng.integers(1, 20, size=2)
        mask = rng.random((height, width)) < rng.random()
        polygons = mask_to_polygons(mask, tolerance=0)
        assert np.array_equal(polygons_to_mask(polygons, height, width), mask)
        assert np.array_equal(fiftyone_fill(polygons, height, width), mask)
        if polygons:
            # The margins that make both fills immune to their snapping.
            rings = [ring for p in polygons for ring in (p.exterior, *p.holes)]
            distances = distances_to_rings(pixel_centres(height, width), rings)
            inside = mask.ravel()
            assert distances[inside].min() == pytest.approx(0.25)
            if not inside.all():
                assert distances[~inside].min() >= 0.5**0.5 - 1e-9


def test_regions_touching_the_border_close_along_it() -> None:
    mask = np.zeros((4, 5), dtype=bool)
    mask[:, 0] = mask[0, :] = mask[3, 4] = True
    polygons = mask_to_polygons(mask, tolerance=0)
    assert sorted(p.bbox for p in polygons) == [
        (0.25, 0.25, 4.75, 3.75),
        (4.25, 3.25, 4.75, 3.75),
    ]
    assert np.array_equal(polygons_to_mask(polygons, 4, 5), mask)


def test_integer_labels_count_as_foreground() -> None:
    labels = np.array([[0, 3, 3], [0, 0, 7], [255, 0, 0]], dtype=np.uint8)
    assert np.array_equal(round_trip(labels), labels != 0)


@pytest.mark.parametrize("mask", [np.zeros((4, 6), dtype=bool), np.zeros((3, 3), dtype=np.int32)])
def test_empty_mask_gives_no_polygons(mask: np.ndarray) -> None:
    assert mask_to_polygons(mask) == []


def test_simplification_stays_within_tolerance_of_the_pixel_edges() -> None:
    rows, cols = np.mgrid[:80, :80]
    disc = (cols - 40.3) ** 2 + (rows - 39.6) ** 2 < 30**2
    (exact,) = mask_to_polygons(disc, tolerance=0)
    assert mask_to_polygons(disc, tolerance=0.25)[0].exterior.tolist() == exact.exterior.tolist()
    perimeter = np.linalg.norm(np.roll(exact.exterior, -1, axis=0) - exact.exterior, axis=1).sum()
    for tolerance in (0.5, 1.0, 2.0):
        (simple,) = mask_to_polygons(disc, tolerance=tolerance)
        assert len(simple.exterior) < len(exact.exterior)
        kept = {tuple(v) for v in simple.exterior}
        assert kept <= {tuple(v) for v in exact.exterior}  # Douglas-Peucker keeps a subset
        # The exact ring is 0.25 inside the pixel edges; simplification moves it by the rest.
        deviation = distances_to_rings(exact.exterior, [simple.exterior])
        assert deviation.max() <= tolerance - 0.25 + 1e-9
        changed = np.count_nonzero(polygons_to_mask([simple], 80, 80) != disc)
        assert changed <= (0 if tolerance == 0.5 else tolerance * perimeter)


@pytest.mark.parametrize("mask", [grid(".... .##. ...."), grid("# . . ."), grid("#")])
def test_simplification_never_collapses_thin_regions(mask: np.ndarray) -> None:
    polygons = mask_to_polygons(mask, tolerance=5.0)
    assert len(polygons) == 1
    assert np.array_equal(polygons_to_mask(polygons, *mask.shape), mask)


def test_min_area_drops_small_polygons() -> None:
    mask = grid("#.... ..### ..### ..###")
    assert [p.area for p in mask_to_polygons(mask, tolerance=0, min_area=1)] == [6.25]
    assert sorted(p.area for p in mask_to_polygons(mask, tolerance=0)) == [0.25, 6.25]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask": np.zeros((2, 2, 3), dtype=bool)}, "2-D"),
        ({"mask": np.zeros((2, 2), dtype=np.float32)}, "bool or integer"),
        ({"mask": np.ones((2, 2), dtype=bool), "tolerance": -1.0}, "tolerance"),
        ({"mask": np.ones((2, 2), dtype=bool), "tolerance": float("nan")}, "tolerance"),
        ({"mask": np.ones((2, 2), dtype=bool), "min_area": -1.0}, "min_area"),
    ],
)
def test_mask_to_polygons_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mask_to_polygons(**kwargs)


# --- Polygon, rings ----------------------------------------------------------------------

SQUARE = [[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]]


def test_polygon_area_bbox_and_frozen_arrays() -> None:
    polygon = Polygon(np.array(SQUARE) * 2, holes=(np.array(SQUARE) + 1,))
    assert polygon.area == 16.0 - 4.0
    assert polygon.bbox == (2.0, 2.0, 6.0, 6.0)
    assert polygon.exterior.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        polygon.exterior[0, 0] = 7.0


def test_polygon_accepts_flat_points_and_copies_them() -> None:
    flat = [1.0, 1.0, 3.0, 1.0, 3.0, 3.0]
    polygon = Polygon(flat)
    flat[0] = 99.0
    assert polygon.exterior.tolist() == [[1.0, 1.0], [3.0, 1.0], [3.0, 3.0]]


@pytest.mark.parametrize(
    ("exterior", "holes", "message"),
    [
        ([[0, 0], [1, 1]], (), "exterior has 2 points; a ring needs at least 3"),
        ([[0, 0], [1, np.nan], [1, 1]], (), "exterior has non-finite"),
        (SQUARE, ([[0, 0], [np.inf, 0], [1, 1]],), "hole 0 has non-finite"),
        ([[0, 0, 0], [1, 1, 1], [2, 2, 2]], (), r"shape \(K, 2\)"),
        ([0, 0, 1, 1, 2], (), "even number of coordinates"),
        (["a", "b"], (), "must be numbers"),
    ],
)
def test_polygon_rejects_bad_rings(exterior: object, holes: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Polygon(exterior, holes)


@pytest.mark.parametrize(
    ("ring", "reason"),
    [
        (SQUARE, None),
        ([1, 1, 3, 1, 3, 3], None),
        ([[0, 0], [1, 1]], "fewer than 3 points"),
        ([[0, 0], [1, float("nan")], [1, 1]], "non-finite coordinates"),
        ([[0, 0], [float("inf"), 0], [1, 1]], "non-finite coordinates"),
        ([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], "zero area"),
        ([[5, 5], [5, 5], [5, 5], [5, 5]], "zero area"),
        ([0, 0, 1, 1, 2], "malformed points"),
        ([[[0, 0]]], "malformed points"),
    ],
)
def test_validate_ring(ring: object, reason: str | None) -> None:
    assert validate_ring(ring) == reason


def test_ring_area_is_absolute_and_precise_far_from_the_origin() -> None:
    square = np.array(SQUARE)
    assert ring_area(square) == ring_area(square[::-1]) == 4.0
    assert ring_area(square + 1e7) == pytest.approx(4.0, abs=1e-6)
    assert ring_area(as_ring([0, 0, 4, 0, 0, 3])) == 6.0


# --- Rasterization -----------------------------------------------------------------------


def _pycocotools_full_image(polygon: Polygon, height: int, width: int) -> np.ndarray:
    rings = [ring.ravel().tolist() for ring in (polygon.exterior, *polygon.holes)]
    layers = mask_utils.decode(mask_utils.frPyObjects(rings, height, width)).astype(bool)
    return layers[:, :, 0] & ~layers[:, :, 1:].any(axis=2)


def test_windows_match_pycocotools_on_the_whole_image() -> None:
    rng = np.random.default_rng(3)
    height, width = 23, 31
    for trial in range(400):
        centre = rng.uniform([-5, -5], [width + 5, height + 5])
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 9)))
        radii = rng.uniform(0.2, 9, angles.size)
        ring = centre + np.stack([np.cos(angles), np.sin(angles)], axis=1) * radii[:, None]
        # Decimal coordinates such as 12.7 sit on pycocotools' rounding edges.
        ring = np.round(ring, 1 if trial % 2 else 2)
        hole = centre + (ring - centre) * 0.4
        for polygon in (Polygon(ring), Polygon(ring, (hole,))):
            expected = _pycocotools_full_image(polygon, height, width)
            assert np.array_equal(polygons_to_mask([polygon], height, width), expected)


def test_pixel_edge_square_fills_its_pixels() -> None:
    mask = polygons_to_mask([Polygon(SQUARE)], 5, 5)
    assert np.argwhere(mask).tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]


def test_union_and_clipping() -> None:
    inside = Polygon([[0, 0], [2, 0], [2, 2], [0, 2]])
    overlapping = Polygon([[1, 1], [3, 1], [3, 3], [1, 3]])
    sticking_out = Polygon([[-2, 3], [10, 3], [10, 9], [-2, 9]])
    far_away = Polygon([[50, 50], [60, 50], [60, 60]])
    mask = polygons_to_mask([inside, overlapping, sticking_out, far_away], 5, 4)
    expected = np.zeros((5, 4), dtype=bool)
    expected[0:2, 0:2] = expected[1:3, 1:3] = expected[3:, :] = True
    assert np.array_equal(mask, expected)
    assert polygon_window(far_away, 5, 4) is None


def test_polygon_window_offsets() -> None:
    inside, top, left = polygon_window(Polygon(SQUARE), 10, 10)
    assert (top, left, inside.shape) == (1, 1, (2, 2))
    assert inside.all()


@pytest.mark.parametrize(
    ("polygons", "height", "width", "message"),
    [
        ([np.array(SQUARE)], 5, 5, "expected a Polygon, got ndarray"),
        ([], 0, 5, "height must be a positive integer"),
        ([], 5, 2.5, "width must be a positive integer"),
    ],
)
def test_polygons_to_mask_rejects_bad_input(
    polygons: list, height: int, width: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        polygons_to_mask(polygons, height, width)


# --- Real labels -------------------------------------------------------------------------

EILAT_CLASSES = 10
IGNORE = 255


@pytest.mark.shared_data
def test_eilat_labels_round_trip(shared_data: Path) -> None:
    """Mask -> polygons per class -> semantic mask, on real dense coral labels."""
    paths = sorted((shared_data / "eilat_train" / "labels").glob("*.png"))[::30]
    assert paths, "no EilatMixx label PNGs found"
    totals = {tolerance: np.zeros((EILAT_CLASSES, 2), dtype=np.int64) for tolerance in (0, 0.5)}
    for path in paths:
        labels = np.array(Image.open(path))
        labelled = labels != IGNORE
        for tolerance, counts in totals.items():
            regions = [
                (value, polygon)
                for value in range(EILAT_CLASSES)
                for polygon in mask_to_polygons(labels == value, tolerance=tolerance)
            ]
            rebuilt = np.full(labels.shape, IGNORE, dtype=np.uint8)
            # Largest first, so that smaller regions end up on top, as rasterization does.
            for value, polygon in sorted(regions, key=lambda r: -r[1].area):
                inside, top, left = polygon_window(polygon, *labels.shape)
                rebuilt[top : top + inside.shape[0], left : left + inside.shape[1]][inside] = value
            for value in range(EILAT_CLASSES):
                pixels = labels == value
                counts[value] += [np.count_nonzero(rebuilt[pixels] == value), pixels.sum()]
            assert (
                np.count_nonzero(rebuilt[labelled] == labels[labelled])
                >= (0.999 if tolerance else 1.0) * labelled.sum()
            )
    for tolerance, counts in totals.items():
        per_class = {
            value: round(float(kept / total), 5)
            for value, (kept, total) in enumerate(counts)
            if total
        }
        overall = counts[:, 0].sum() / counts[:, 1].sum()
        print(f"tolerance {tolerance}: {overall:.5%} of labelled pixels back; {per_class}")
        assert overall >= (0.999 if tolerance else 1.0)
        assert min(per_class.values()) >= (0.995 if tolerance else 1.0)


def test_normalized_rings_divide_by_the_image_size() -> None:
    from coral_core.formats.polygons import normalized_rings

    square = Polygon(
        np.array([[0.0, 0.0], [20.0, 0.0], [20.0, 10.0]]), (np.array([[1.0, 1], [2, 1], [2, 2]]),)
    )
    rings = normalized_rings(square, width=40, height=20)
    assert rings[0] == [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]]
    assert rings[1][2] == [0.05, 0.1]
