"""Conversions between :mod:`coral_core` polygons / masks and FiftyOne label objects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coral_core.formats.polygons import Polygon, mask_to_polygons, normalized_rings


def polygon_to_polyline(polygon: Polygon, label: str, width: int, height: int, **attributes):
    """A filled ``fo.Polyline`` for a polygon: shapes ``[exterior, *holes]``, normalised.

    Within one filled polyline coralseg combines shapes by the even-odd rule, so the holes
    are subtracted (as FiftyOne's own rasterizer does).
    """
    import fiftyone as fo

    shapes = normalized_rings(polygon, width, height)
    return fo.Polyline(label=label, points=shapes, closed=True, filled=True, **attributes)


def semantic_mask_to_polylines(
    mask: np.ndarray,
    class_names: Sequence[str],
    first_value: int = 0,
    tolerance: float = 0.5,
):
    """``fo.Polylines`` with one filled polyline per connected region of each class.

    Args:
        mask: ``HxW`` integer label mask; value ``first_value + i`` is ``class_names[i]``;
            other values (background, ignore) produce nothing.
        class_names: names of the classes in value order.
        first_value: pixel value of ``class_names[0]``.
        tolerance: outline simplification in pixels (see ``coral_core.formats.polygons``).
    """
    import fiftyone as fo

    height, width = mask.shape
    polylines = []
    for index, name in enumerate(class_names):
        region = mask == first_value + index
        if region.any():
            polylines.extend(
                polygon_to_polyline(p, name, width, height)
                for p in mask_to_polygons(region, tolerance=tolerance)
            )
    return fo.Polylines(polylines=polylines)
