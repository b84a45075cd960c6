"""Binary masks to polygons and back, in the pixel coordinates CVAT and COCO use.

Coordinate convention: pixel (row ``i``, column ``j``) covers the square
``[j, j + 1) x [i, i + 1)``, so its centre is ``(j + 0.5, i + 0.5)``; x runs right, y down.
A ring is a ``(K, 2)`` float64 array of ``(x, y)`` vertices in these coordinates, ``K >= 3``,
the first vertex not repeated at the end; its orientation carries no meaning.

Rasterization follows pycocotools (``frPyObjects`` + ``decode``), which is how CVAT and
Datumaro turn polygons into masks: a pixel is inside when its centre is, after pycocotools
snaps the vertices to a 1/5-pixel grid and the edges to 1/5-pixel steps (at most 0.2 pixel
of displacement in all).

:func:`mask_to_polygons` traces each region on the mask upsampled 2x (nearest) and maps a
traced point ``(X, Y)`` of the upsampled grid to ``((X + 0.5) / 2, (Y + 0.5) / 2)``. The
traced points are centres of the upsampled boundary pixels, so the ring runs a quarter pixel
inside the region's pixel edges (cutting concave corners by a diagonal); where pixels touch
only diagonally it runs along the diagonal and back. Every region pixel's centre lies at
least 0.25 pixel inside the ring and every other centre at least 0.7 pixel outside, 1-pixel
lines included, which keeps the exact ring exact under both rasterizers polygons meet here:

* pycocotools (CVAT, Datumaro, :func:`polygons_to_mask`): its snapping moves a quarter-pixel
  vertex by 0.05, staying 0.3 pixel from every centre;
* FiftyOne's ``to_segmentation``, which truncates vertices to integers and fills with
  ``cv2.fillPoly``, boundary included: every vertex lies inside a region pixel, so the ring
  becomes the polygon through the region's boundary pixels.

The tests check both on every 3x4, 4x3 and 4x4 mask and on random masks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import ArrayLike
from pycocotools import mask as mask_utils

# pycocotools rounds vertices to this grid: (int)(x * 5 + 0.5) in its C code.
_COCO_SCALE = 5.0
# Below this absolute area (square pixels) a ring counts as degenerate: rounding noise of
# collinear float coordinates, not a shape anyone drew.
_ZERO_AREA = 1e-9


@dataclass(frozen=True, eq=False)
class Polygon:
    """One region: an exterior ring and the rings of its holes (see the module docstring).

    Attributes:
        exterior: ``(K, 2)`` float64 array of ``(x, y)`` vertices, ``K >= 3``, finite.
        holes: rings of the same form; the pixels inside a hole are not part of the polygon.
            A region lying inside a hole is a polygon of its own.

    The arrays are stored as read-only float64 copies. Construction raises ``ValueError`` for
    rings of the wrong shape, with fewer than 3 points or with non-finite coordinates; rings
    of zero area are allowed (they rasterize to nothing; :func:`validate_ring` reports them).
    Instances compare by identity, since arrays have no single truth value.
    """

    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "exterior", _checked_ring(self.exterior, "exterior"))
        holes = tuple(_checked_ring(hole, f"hole {index}") for index, hole in enumerate(self.holes))
        object.__setattr__(self, "holes", holes)

    @property
    def area(self) -> float:
        """Area in square pixels: the exterior's minus its holes' (shoelace formula).

        For a polygon from :func:`mask_to_polygons` this is less than the region's pixel
        count, as the ring runs a quarter pixel inside its edges (one pixel gives 0.25).
        """
        return ring_area(self.exterior) - sum(ring_area(hole) for hole in self.holes)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)``: the smallest and largest exterior coordinates."""
        x0, y0 = self.exterior.min(axis=0)
        x1, y1 = self.exterior.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


def as_ring(points: ArrayLike) -> np.ndarray:
    """A ring as a ``(K, 2)`` float64 array.

    Args:
        points: ``(K, 2)`` array-like of ``(x, y)``, or a flat sequence
            ``x0, y0, x1, y1, ...`` as CVAT shapes and COCO segmentations store polygons.

    Raises:
        ValueError: the points are neither form. No other check is made; see
            :func:`validate_ring`.
    """
    try:
        ring = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "a ring must be numbers: (x, y) pairs or flat x0, y0, x1, y1, ..."
        ) from None
    if ring.ndim == 1:
        if ring.size % 2:
            raise ValueError(
                f"a flat ring x0, y0, x1, y1, ... needs an even number of coordinates, "
                f"got {ring.size}"
            )
        return ring.reshape(-1, 2)
    if ring.ndim != 2 or ring.shape[1] != 2:
        raise ValueError(
            f"a ring must have shape (K, 2) for (x, y) vertices or be flat, got shape {ring.shape}"
        )
    return ring


def ring_area(ring: ArrayLike) -> float:
    """Absolute area enclosed by a ring, in square pixels (shoelace formula).

    Args:
        ring: ``(K, 2)`` or flat points, as :func:`as_ring` takes them. A ring that crosses
            itself gets the absolute value of its signed area, not its covered area.
    """
    points = as_ring(ring)
    if len(points) < 3:
        return 0.0
    # Measuring from the first vertex keeps float rounding small for rings far from the
    # origin, and integer rings exact.
    x, y = (points - points[0]).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2.0)


def validate_ring(ring: ArrayLike) -> str | None:
    """Why a ring cannot be rasterized, or ``None`` when it can.

    Returns one of ``"malformed points"`` (not ``(K, 2)`` numbers or an even-length flat
    list), ``"fewer than 3 points"``, ``"non-finite coordinates"`` (NaN or infinity) or
    ``"zero area"``, so that callers can count and report bad polygons instead of failing.
    """
    try:
        points = as_ring(ring)
    except ValueError:
        return "malformed points"
    if len(points) < 3:
        return "fewer than 3 points"
    if not np.isfinite(points).all():
        return "non-finite coordinates"
    if ring_area(points) < _ZERO_AREA:
        return "zero area"
    return None


def as_binary_mask(mask: ArrayLike) -> np.ndarray:
    """``mask != 0`` as an ``HxW`` bool array, after checking it is a 2-D bool or integer array.

    Raises:
        ValueError: the mask is not 2-D or not bool/integer; the message says which.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D HxW array, got shape {mask.shape}")
    if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"mask must be bool or integer (nonzero = foreground), got {mask.dtype}")
    return mask if mask.dtype == np.bool_ else mask != 0


def foreground_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box ``(x0, y0, x1, y1)`` (ends exclusive) of an ``HxW`` mask's nonzero pixels,
    or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def check_image_size(height: int, width: int) -> None:
    """Raise ``ValueError`` unless height and width are positive integers (pixels)."""
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
            raise ValueError(f"{name} must be a positive integer number of pixels, got {value!r}")


def mask_to_polygons(
    mask: np.ndarray, tolerance: float = 0.5, min_area: float = 0.0
) -> list[Polygon]:
    """Polygons of the 8-connected foreground regions of a mask, holes included.

    Args:
        mask: ``HxW`` bool or integer array; nonzero pixels are foreground.
        tolerance: how far, in pixels, the outline may stray from the region's pixel edges.
            The exact ring runs 0.25 inside them, so up to 0.25 keeps it, and rasterizing
            gives ``mask`` back exactly; beyond, Douglas-Peucker simplification
            (``cv2.approxPolyDP``) may move it by the rest. The default half pixel kept every
            labelled pixel of the EilatMixx masks with 28% fewer vertices; 1.0 keeps 99.5%
            with 70% fewer. A ring that simplification would reduce to a segment is kept
            exact.
        min_area: polygons whose :attr:`Polygon.area` (square pixels) is below this are
            left out.

    Returns:
        One :class:`Polygon` per 8-connected region (a region inside another's hole is a
        separate polygon), with the holes (4-connected background regions it encloses),
        in pixel coordinates as described in the module docstring; ``[]`` for an empty mask.
    """
    binary = as_binary_mask(mask)
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0 pixels, got {tolerance}")
    if not (math.isfinite(min_area) and min_area >= 0):
        raise ValueError(f"min_area must be a finite number >= 0 square pixels, got {min_area}")
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(binary.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    crop = np.ascontiguousarray(binary[top : rows[-1] + 1, left : cols[-1] + 1]).view(np.uint8)
    # RETR_CCOMP: outer borders of 8-connected regions on level 1 with their holes as
    # children; a region inside a hole is again on level 1. CHAIN_APPROX_SIMPLE drops only
    # the points inside straight runs, so the ring stays exact. Pixels beyond the image
    # count as background, so regions touching its border close along it.
    upsampled = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(upsampled, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    links = hierarchy[0]
    offset = np.array([left, top], dtype=np.float64)
    # The traced ring is 0.25 pixel inside the pixel edges; simplification may use the rest.
    epsilon = 2.0 * max(0.0, tolerance - 0.25)  # in pixels of the 2x upsampled mask
    polygons = []
    for index, contour in enumerate(contours):
        if links[index, 3] != -1:
            continue
        holes = []
        child = links[index, 2]
        while child != -1:
            holes.append(_traced_ring(contours[child], epsilon, offset))
            child = links[child, 0]
        polygon = Polygon(_traced_ring(contour, epsilon, offset), tuple(holes))
        if min_area == 0 or polygon.area >= min_area:
            polygons.append(polygon)
    return polygons


def polygons_to_mask(polygons: Iterable[Polygon], height: int, width: int) -> np.ndarray:
    """Rasterize polygons the way pycocotools (and so CVAT and Datumaro) does.

    Args:
        polygons: :class:`Polygon` objects in the pixel coordinates of the module docstring;
            parts outside the image are clipped.
        height, width: image size in pixels.

    Returns:
        ``HxW`` bool array, True inside the union of the polygons (each one's exterior minus
        its holes).
    """
    check_image_size(height, width)
    out = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        window = polygon_window(polygon, height, width)
        if window is not None:
            inside, top, left = window
            out[top : top + inside.shape[0], left : left + inside.shape[1]] |= inside
    return out


def polygon_window(polygon: Polygon, height: int, width: int) -> tuple[np.ndarray, int, int] | None:
    """Rasterize one polygon within its bounding box, clipped to the ``height x width`` image.

    Gives the same pixels as pycocotools on the whole image, at the cost of the box only.

    Returns:
        ``(inside, top, left)``: ``inside`` is a bool array, True where the pixels
        ``[top : top + inside.shape[0], left : left + inside.shape[1]]`` of the image lie in
        the exterior and in none of the holes; ``None`` when the box holds no pixel of the
        image.
    """
    if not isinstance(polygon, Polygon):
        raise ValueError(
            f"expected a Polygon, got {type(polygon).__name__}; wrap a ring as Polygon(ring)"
        )
    check_image_size(height, width)
    x0, y0, x1, y1 = polygon.bbox
    # pycocotools tests pixel centres and snaps by at most 0.1 pixel per axis, so no pixel
    # outside [floor(x0), ceil(x1)) x [floor(y0), ceil(y1)) can be inside.
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if right <= left or bottom <= top:
        return None
    rings = [_window_coords(ring, left, top) for ring in (polygon.exterior, *polygon.holes)]
    rles = mask_utils.frPyObjects(rings, bottom - top, right - left)
    inside = mask_utils.decode(rles[0]).astype(bool)
    if polygon.holes:
        # Union the holes as run lengths: decoding one layer per hole costs a full window each.
        inside &= ~mask_utils.decode(mask_utils.merge(rles[1:])).astype(bool)
    return inside, top, left


def _window_coords(ring: np.ndarray, left: int, top: int) -> list[float]:
    """Flat coordinates of a ring for pycocotools in a window whose origin is (left, top).

    pycocotools snaps each coordinate with C's ``(int)(5 * c + 0.5)``. Shifting the float
    coordinate by the window origin could round differently (decimal coordinates such as
    12.7 sit on the rounding edge), so a shifted axis is snapped here exactly as pycocotools
    snaps it on the whole image and handed over as ``snapped / 5``, which pycocotools snaps
    back to the same integer. An axis whose origin is 0 is passed unchanged, since its
    negative coordinates (truncated towards zero by C) must not be touched.
    """
    coords = ring.copy()
    for axis, origin in ((0, left), (1, top)):
        if origin > 0:  # then every coordinate on this axis is >= origin > 0
            snapped = np.floor(coords[:, axis] * _COCO_SCALE + 0.5)
            coords[:, axis] = (snapped - _COCO_SCALE * origin) / _COCO_SCALE
    return coords.ravel().tolist()


def _traced_ring(contour: np.ndarray, epsilon: float, offset: np.ndarray) -> np.ndarray:
    """A contour traced on the 2x upsampled mask as a ring in image coordinates, simplified."""
    points = contour
    if epsilon > 0:
        simplified = cv2.approxPolyDP(contour, epsilon, closed=True)
        if len(simplified) >= 3 and ring_area(simplified.reshape(-1, 2)) > 0:
            points = simplified
    return (points.reshape(-1, 2) + 0.5) / 2.0 + offset


def _checked_ring(points: ArrayLike, name: str) -> np.ndarray:
    ring = np.array(as_ring(points), dtype=np.float64)  # a copy, so freezing it is safe
    if len(ring) < 3:
        raise ValueError(f"polygon {name} has {len(ring)} points; a ring needs at least 3")
    if not np.isfinite(ring).all():
        raise ValueError(f"polygon {name} has non-finite coordinates (NaN or infinity)")
    ring.setflags(write=False)
    return ring


def normalized_rings(polygon: Polygon, width: int, height: int) -> list[list[list[float]]]:
    """``[exterior, *holes]`` with ``x / width, y / height``: FiftyOne's polyline ``points``.

    Args:
        polygon: in pixel coordinates.
        width, height: the image size the coordinates are normalised by.

    Returns:
        One list of ``[x, y]`` pairs per ring, floats, in [0, 1] for points inside the image.
    """
    check_image_size(height, width)
    scale = np.array([width, height], dtype=np.float64)
    return [(ring / scale).tolist() for ring in (polygon.exterior, *polygon.holes)]
