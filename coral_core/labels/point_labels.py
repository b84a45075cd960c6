"""Point labels as training masks: where a point survey's labels go in a label mask.

A point label (CoralNet, CPCe, a CVAT ``points`` shape) says which class lies under one spot
of a photo. Training from points uses masks that hold the class at each point and 255
(ignore) everywhere else; :func:`stamp_points` draws them, :func:`simulate_points` draws a
point survey from a dense mask (to measure what points alone can teach, against dense
labels). Points are in normalised ``(x, y)`` image coordinates, ``[0, 1]``, x right, y down:
pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)`` in pixels, as in
:mod:`coral_core.formats.polygons`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from coral_core.labels.taxonomy import IGNORE_INDEX

DEFAULT_POINT_RADIUS = 2  # pixels of the written mask; see stamp_points


@dataclass(frozen=True)
class LabeledPoint:
    """One point label.

    Attributes:
        label: the class name (already mapped from a survey's label code).
        x, y: normalised image coordinates in ``[0, 1]``.
    """

    label: str
    x: float
    y: float


def point_pixels(points: Sequence[LabeledPoint], height: int, width: int) -> np.ndarray:
    """The ``(row, column)`` pixel under each point, an ``(N, 2)`` int64 array."""
    if not points:
        return np.zeros((0, 2), np.int64)
    xy = np.array([(p.x, p.y) for p in points], dtype=np.float64)
    columns = np.clip(np.floor(xy[:, 0] * width), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(xy[:, 1] * height), 0, height - 1).astype(np.int64)
    return np.stack([rows, columns], axis=1)


def stamp_points(
    mask: np.ndarray,
    points: Sequence[LabeledPoint],
    values: Mapping[str, int],
    radius: int = DEFAULT_POINT_RADIUS,
) -> np.ndarray:
    """A copy of ``mask`` with each point's class drawn as a disc of ``radius`` pixels.

    A disc rather than one pixel so the label survives the random down-scaling of training
    pipelines (a single pixel vanishes from a mask shrunk 3x two times in three).

    Args:
        mask: ``(H, W)`` uint8 label mask; all 255 for a photo labelled by points only.
        points: the photo's points; labels must be keys of ``values``.
        values: label name -> pixel value.
        radius: disc radius in pixels; 0 marks the single pixel under the point.

    Raises:
        ValueError: a label missing from ``values`` or a negative radius.
    """
    if radius < 0:
        raise ValueError(f"point radius must be 0 or more pixels, got {radius}")
    missing = sorted({p.label for p in points} - set(values))
    if missing:
        raise ValueError(f"point labels without a mask value: {missing}")
    out = mask.copy()
    height, width = mask.shape
    offsets = [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if dy * dy + dx * dx <= radius * radius
    ]
    pixels = point_pixels(points, height, width)
    for (row, column), point in zip(pixels, points, strict=True):
        value = values[point.label]
        for dy, dx in offsets:
            r, c = row + dy, column + dx
            if 0 <= r < height and 0 <= c < width:
                out[r, c] = value
    return out


def simulate_points(
    dense: np.ndarray,
    count: int,
    rng: np.random.Generator,
    names: Sequence[str],
    ignore: int = IGNORE_INDEX,
) -> list[LabeledPoint]:
    """A simulated point survey of a dense label mask: ``count`` random labelled pixels.

    Points fall uniformly on the pixels that carry a label (not ``ignore``), as an annotator
    scores only points on something identifiable.

    Args:
        dense: ``(H, W)`` uint8 mask, values index ``names`` or equal ``ignore``.
        count: points to draw (fewer when the mask has fewer labelled pixels).
        rng: the random generator (its state decides the draw).
        names: class name of each mask value.
    """
    if count < 0:
        raise ValueError(f"point count must be 0 or more, got {count}")
    labelled = np.flatnonzero(dense.ravel() != ignore)
    chosen = rng.choice(labelled, size=min(count, labelled.size), replace=False)
    height, width = dense.shape
    rows, columns = np.divmod(chosen, width)
    values = dense.ravel()[chosen]
    return [
        LabeledPoint(names[int(v)], (c + 0.5) / width, (r + 0.5) / height)
        for r, c, v in zip(rows, columns, values, strict=True)
    ]
