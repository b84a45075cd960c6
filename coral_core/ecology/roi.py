"""Regions of interest: the part of a photo-quadrat that cover and colonies are measured in.

A region of interest (ROI) is an ``(H, W)`` bool array, True inside. Quadrat photos usually
show the frame and some reef around it; only the inside of the frame is the sample. It is
given either as a margin cut from every side of the image or as a polygon (the frame's
inside corners), in the pixel coordinates of :mod:`coral_core.formats.polygons`: pixel
``(row i, column j)`` covers ``[j, j + 1) x [i, i + 1)``, and is inside a polygon when its
centre is.

Written forms: :func:`parse_roi_margin` reads ``"40"`` (pixels) or ``"5%"``,
:func:`parse_roi_polygon` ``"x,y x,y x,y"`` (pixel corners); one polygon per image comes from
a CSV (:func:`coral_core.ecology.image_settings.read_roi_csv`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from coral_core.errors import CoralsegError
from coral_core.formats.polygons import Polygon, as_ring, check_image_size, polygons_to_mask


def margin_pixels(
    height: int, width: int, margin: float, unit: Literal["px", "fraction"] = "px"
) -> tuple[int, int]:
    """The margin in whole pixels: ``(rows cut at top and bottom, columns cut left and right)``.

    Args:
        margin: ``unit="px"``: pixels, ``>= 0``; ``unit="fraction"``: a fraction of the
            image's height (top and bottom) and width (left and right), in ``[0, 0.5)``.
            Fractions round to the nearest pixel.
    """
    check_image_size(height, width)
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"a margin must be a finite number >= 0, got {margin}")
    if unit == "px":
        rows = cols = round(margin)
    elif unit == "fraction":
        if margin >= 0.5:
            raise ValueError(f"a margin fraction must be below 0.5 of each side, got {margin}")
        rows, cols = round(margin * height), round(margin * width)
    else:
        raise ValueError(f"a margin unit is 'px' or 'fraction', got {unit!r}")
    if 2 * rows >= height or 2 * cols >= width:
        raise ValueError(
            f"a margin of {margin:g} {unit} leaves nothing of a {width}x{height} image; "
            "use a smaller margin"
        )
    return rows, cols


def roi_from_margin(
    height: int, width: int, margin: float, unit: Literal["px", "fraction"] = "px"
) -> np.ndarray:
    """``(H, W)`` bool ROI: the image minus a margin on every side (see :func:`margin_pixels`)."""
    rows, cols = margin_pixels(height, width, margin, unit)
    roi = np.zeros((height, width), dtype=bool)
    roi[rows : height - rows, cols : width - cols] = True
    return roi


def roi_from_polygon(height: int, width: int, points: ArrayLike) -> np.ndarray:
    """``(H, W)`` bool ROI: the pixels whose centre lies inside a polygon.

    Args:
        points: ``(K, 2)`` ``(x, y)`` vertices in pixels (or flat ``x0, y0, x1, ...``),
            ``K >= 3``; parts outside the image are clipped.

    Raises:
        ValueError: the points are not a polygon, or it holds no pixel of the image.
    """
    roi = polygons_to_mask([Polygon(as_ring(points))], height, width)
    if not roi.any():
        raise ValueError(
            f"the region-of-interest polygon holds no pixel of the {width}x{height} image; "
            "give its corners in pixels of this image"
        )
    return roi


def roi_edge(roi: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: ROI pixels on its border (next to a pixel outside it, 8-neighbourhood,
    or on the image border). A colony touching these is cut by the frame or the image."""
    roi = np.asarray(roi, dtype=bool)
    padded = np.pad(roi, 1, constant_values=False)
    inner = np.ones_like(roi)
    height, width = roi.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            inner &= padded[dy : dy + height, dx : dx + width]
    return roi & ~inner


def parse_roi_margin(text: str) -> tuple[float, Literal["px", "fraction"]]:
    """A margin as written: ``"40"`` -> ``(40, "px")``; ``"5%"`` -> ``(0.05, "fraction")``.

    Raises:
        CoralsegError: not a number of pixels or a percentage below 50.
    """
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (percent and value >= 50):
        raise CoralsegError(
            f"a region-of-interest margin is pixels (e.g. 40) or a percentage of each side "
            f"below 50 (e.g. 5%), got {text!r}",
            settings=("roi_margin",),
        )
    return (value / 100.0, "fraction") if percent else (value, "px")


def parse_roi_polygon(text: str) -> np.ndarray:
    """A polygon as written: ``"x,y x,y x,y"`` -> ``(K, 2)`` float64 pixel vertices.

    Raises:
        CoralsegError: fewer than three finite ``x,y`` pairs.
    """
    try:
        points = np.array(
            [[float(v) for v in pair.split(",")] for pair in text.replace(";", " ").split()],
            dtype=np.float64,
        )
    except ValueError:
        points = np.zeros((0, 0))
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3 or not np.isfinite(points).all():
        raise CoralsegError(
            f"a region-of-interest polygon is at least three X,Y pixel corners separated by "
            f"spaces, e.g. '120,80 1800,95 1790,1700 110,1690'; got {text!r}",
            settings=("roi_polygon",),
        )
    return points
