"""CVAT colony shapes as FiftyOne-style polylines: pure data, no cvat-sdk, no FiftyOne.

The pull direction of the CVAT format (what a CVAT task holds -> normalised polylines);
:mod:`coral_core.formats.cvat_shapes` is the push direction (predictions -> CVAT shapes).

* a CVAT polygon becomes a closed, filled polyline; a CVAT polyline an open one;
* a CVAT mask (``points = rle + [left, top, right, bottom]``) becomes one filled polyline per
  8-connected part whose shapes are ``[exterior, hole1, hole2, ...]``: within a filled
  polyline the shapes combine by the even-odd rule (holes are subtracted), as
  :mod:`coral_core.labels.rasterize` and FiftyOne's rasterizer read them;
* points are CVAT pixel coordinates (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``) divided
  by the frame's width and height, so they lie in ``[0, 1]`` for shapes inside the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coral_core.formats.polygons import mask_to_polygons, normalized_rings
from coral_core.formats.rle import cvat_points_to_mask

DEFAULT_MASK_TOLERANCE = 0.5

Point = tuple[float, float]


@dataclass(frozen=True)
class PolylineSpec:
    """One polyline to be: normalised shapes and the CVAT facts kept with it.

    Attributes:
        label: the CVAT label name.
        points: shapes, each a list of normalised ``(x, y)``; ``[exterior, *holes]``.
        closed, filled: True for regions (polygons, mask parts), False for open polylines.
        attributes: ``cvat_shape_id``, ``z_order``, ``occluded``, ``cvat_shape_type``.
    """

    label: str
    points: list[list[Point]]
    closed: bool
    filled: bool
    attributes: dict[str, Any]


def normalize_points(points: Sequence[float], width: int, height: int) -> list[Point]:
    """CVAT flat pixel coordinates ``[x0, y0, x1, ...]`` -> ``[(x0 / width, y0 / height), ...]``."""
    if len(points) % 2:
        raise ValueError(f"CVAT points come in x, y pairs; got {len(points)} numbers")
    return [
        (float(points[i]) / width, float(points[i + 1]) / height) for i in range(0, len(points), 2)
    ]


def mask_parts(
    points: Sequence[float], width: int, height: int, tolerance: float = DEFAULT_MASK_TOLERANCE
) -> list[list[list[Point]]]:
    """A CVAT mask (``points = rle + [left, top, right, bottom]``) -> one entry per
    8-connected part: ``[exterior, hole1, ...]``, each a list of normalised ``(x, y)``.

    ``tolerance`` (pixels) is the outline simplification of
    :func:`coral_core.formats.polygons.mask_to_polygons`.
    """
    mask = cvat_points_to_mask(points, height, width)
    return [
        [[(x, y) for x, y in ring] for ring in normalized_rings(polygon, width, height)]
        for polygon in mask_to_polygons(mask, tolerance=tolerance)
    ]


def shape_to_polylines(
    shape: Any,
    label: str,
    width: int,
    height: int,
    tolerance: float = DEFAULT_MASK_TOLERANCE,
) -> list[PolylineSpec]:
    """The polylines of one CVAT polygon, polyline or mask shape (a ``LabeledShape`` or any
    object with its attributes ``type``, ``points``, ``id``, ``z_order``, ``occluded``).

    Raises:
        ValueError: another shape type, too few points, or a malformed mask.
    """
    shape_type = str(shape.type)
    attributes = {
        "cvat_shape_id": shape.id,
        "z_order": int(shape.z_order),
        "occluded": bool(shape.occluded),
        "cvat_shape_type": shape_type,
    }
    if shape_type == "mask":
        return [
            PolylineSpec(label, rings, True, True, dict(attributes))
            for rings in mask_parts(shape.points, width, height, tolerance)
        ]
    if shape_type not in ("polygon", "polyline"):
        raise ValueError(f"CVAT {shape_type} shapes are not colonies")
    ring = normalize_points(shape.points, width, height)
    closed = shape_type == "polygon"
    if len(ring) < (3 if closed else 2):
        raise ValueError(f"a CVAT {shape_type} with {len(ring)} points")
    return [PolylineSpec(label, [ring], closed, closed, attributes)]
