"""Rasterization: labelled polylines (FiftyOne/CVAT annotations) -> one semantic label mask.

The rules, in the order they apply:

1. Coordinates. Points are normalised ``(x, y)`` in [0, 1] as FiftyOne stores them; they
   become CVAT pixel coordinates by ``x * width, y * height`` (pixel ``(i, j)`` covers
   ``[j, j+1) x [i, i+1)``). A pixel belongs to a polygon when its centre does, the rule of
   pycocotools with which CVAT and Datumaro export polygons to masks.
2. Regions. A closed polyline is a region, whether or not it is marked ``filled``; an open
   polyline (``closed=False``) has no area and is skipped (counted as ``open polyline``).
   The shapes of one polyline combine by the even-odd rule: the first is the outline, shapes
   inside it are holes, islands inside holes count again (as FiftyOne's own rasterizer does).
3. Invalid shapes are dropped and counted: fewer than 3 points, non-finite coordinates,
   zero area; a valid region whose pixels all lie outside the image or cover no pixel
   centre is counted as ``outside the image`` or ``covers no pixel``. Parts outside the
   image are clipped.
4. Overlaps. Where colonies overlap, the smaller one (fewer pixels) stays on top: regions are
   painted from largest to smallest; equal sizes keep their annotation order.
5. Labels. A label the caller's value table does not know is an error listing every unknown
   label, unless ``unknown="skip"``, which drops and counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.formats.polygons import Polygon, polygon_window, validate_ring


@dataclass(frozen=True)
class LabeledPolyline:
    """One annotation: a label and its shapes in normalised coordinates.

    Attributes:
        label: label name as drawn (mapped to a pixel value by the caller's table).
        shapes: each a ``(K, 2)`` float array of normalised ``(x, y)`` in [0, 1].
        closed: False for open polylines, which have no area.
    """

    label: str
    shapes: tuple[np.ndarray, ...]
    closed: bool = True


@dataclass
class RasterizeReport:
    """What rasterization drew and dropped; reports add up with ``+``."""

    regions_drawn: int = 0
    dropped: Counter = field(default_factory=Counter)  # reason -> count
    unknown_labels: Counter = field(default_factory=Counter)  # label -> count

    def __add__(self, other: RasterizeReport) -> RasterizeReport:
        return RasterizeReport(
            self.regions_drawn + other.regions_drawn,
            self.dropped + other.dropped,
            self.unknown_labels + other.unknown_labels,
        )


def to_pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised ``(K, 2)`` points -> float64 CVAT pixel coordinates ``(x*width, y*height)``."""
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) * (float(width), float(height))


def unknown_labels(polylines: Sequence[LabeledPolyline], values: Mapping[str, int]) -> Counter:
    """Labels not in ``values``, with how often they occur."""
    return Counter(p.label for p in polylines if p.label not in values)


@dataclass(frozen=True, eq=False)
class Region:
    """One annotation's pixels before overlaps are resolved.

    Attributes:
        label: its label; ``value``: its pixel value.
        mask: ``(h, w)`` bool, its pixels inside its window.
        origin: ``(top, left)`` of the window in the image.
        order: its position among the annotations.
    """

    label: str
    value: int
    mask: np.ndarray
    origin: tuple[int, int]
    order: int

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


def polyline_regions(
    polylines: Sequence[LabeledPolyline],
    height: int,
    width: int,
    values: Mapping[str, int],
    unknown: Literal["error", "skip"] = "error",
) -> tuple[list[Region], RasterizeReport]:
    """Each annotation's pixels (rules 1-3 and 5), in painting order (rule 4): largest
    first, equal sizes in annotation order, so a later region is on top of an earlier one.

    Raises:
        CoralsegError: unknown labels with ``unknown="error"``, listing them.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    report = RasterizeReport()
    missing = unknown_labels(polylines, values)
    if missing and unknown == "error":
        listed = ", ".join(f"{label!r} ({n})" for label, n in missing.most_common())
        raise CoralsegError(
            f"labels not in the taxonomy: {listed}; map them to a class or skip them"
        )
    report.unknown_labels.update(missing)

    regions: list[Region] = []
    for order, polyline in enumerate(polylines):
        if polyline.label in missing:
            continue
        if not polyline.closed:
            report.dropped["open polyline"] += 1
            continue
        rings = []
        for shape in polyline.shapes:
            ring = to_pixels(shape, width, height)
            reason = validate_ring(ring)
            if reason is None:
                rings.append(ring)
            else:
                report.dropped[reason] += 1
        if not rings:
            continue
        window = _region_mask(rings, height, width)
        if window is None:
            report.dropped["outside the image"] += 1
            continue
        region = Region(polyline.label, values[polyline.label], *window, order)
        if region.area == 0:
            report.dropped["covers no pixel"] += 1
            continue
        regions.append(region)
    # Largest first, so smaller colonies end up on top; ties keep annotation order.
    regions.sort(key=lambda r: (-r.area, r.order))
    report.regions_drawn = len(regions)
    return regions, report


def rasterize_polylines(
    polylines: Sequence[LabeledPolyline],
    height: int,
    width: int,
    values: Mapping[str, int],
    background: int = 0,
    unknown: Literal["error", "skip"] = "error",
) -> tuple[np.ndarray, RasterizeReport]:
    """Draw labelled polylines into a semantic mask, following the module's rules.

    Args:
        polylines: the annotations of one image.
        height, width: size of the output mask in pixels (the normalised coordinates are
            scaled to it, so a resized image needs no mask resizing).
        values: label name -> pixel value (0..255), e.g. from
            :meth:`coral_core.labels.taxonomy.MaskEncoding.value_lookup`.
        background: value of pixels no region covers (0, or 255 when background is ignored).
        unknown: ``"error"`` raises on labels missing from ``values``; ``"skip"`` drops them.

    Returns:
        ``(mask, report)``: mask is ``(height, width)`` uint8.

    Raises:
        CoralsegError: unknown labels with ``unknown="error"``, listing them.
    """
    regions, report = polyline_regions(polylines, height, width, values, unknown)
    mask = np.full((height, width), background, dtype=np.uint8)
    for region in regions:
        (y0, x0), (h, w) = region.origin, region.mask.shape
        mask[y0 : y0 + h, x0 : x0 + w][region.mask] = region.value
    return mask, report


def _region_mask(
    rings: list[np.ndarray], height: int, width: int
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Even-odd combination of rings, inside their bounding window clipped to the image.

    Returns ``(window_mask, (y0, x0))`` with a bool window mask, or None when the rings lie
    entirely outside the image.
    """
    windows = [w for w in (polygon_window(Polygon(ring), height, width) for ring in rings) if w]
    if not windows:
        return None
    y0 = min(top for _, top, _ in windows)
    x0 = min(left for _, _, left in windows)
    y1 = max(top + inside.shape[0] for inside, top, _ in windows)
    x1 = max(left + inside.shape[1] for inside, _, left in windows)
    region = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for inside, top, left in windows:
        h, w = inside.shape
        region[top - y0 : top - y0 + h, left - x0 : left - x0 + w] ^= inside
    return region, (y0, x0)
