"""CVAT's encodings of coralseg colonies, as plain data (no cvat_sdk, no nuclio_sdk).

The Nuclio function, the cvat-sdk function and the webhook bridge all turn a
:class:`~coral_core.inference.instances.TwoStageResult` into CVAT shapes here, so the three
write the same shapes for the same image.

* A colony as a CVAT **polygon**: the outline of its largest connected part, flat
  ``[x0, y0, x1, y1, ...]`` in image pixel coordinates (CVAT's: pixel ``(i, j)`` covers
  ``[j, j + 1) x [i, i + 1)``), traced so that rasterizing it the way CVAT exports polygons
  gives the part back within half a pixel (:func:`coral_core.polygons.mask_to_polygons`).
  CVAT polygons have no holes and one part, so holes and smaller parts are only kept by
  masks.
* A colony as a CVAT **mask shape** (REST API and cvat-sdk): ``[runs..., left, top, right,
  bottom]`` (:func:`coral_core.rle.mask_to_cvat_points`), box inclusive.
* A colony in a **Nuclio detector** response: ``mask`` is the colony's box flattened
  row-major with 0/255 values, followed by ``xtl, ytl, xbr, ybr`` (inclusive), as CVAT's own
  serverless functions send it; ``points`` carries the polygon, which CVAT uses when the
  user asks to convert masks to polygons.

Only colony classes are sent (cover-only classes have no colonies), so a function's label
spec lists exactly the colony classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from coral_core.inference.instances import CoralInstance, TwoStageResult
from coral_core.polygons import mask_to_polygons
from coral_core.rle import mask_to_cvat_points
from coral_core.taxonomy import MaskEncoding

ShapeType = Literal["polygon", "mask"]


@dataclass(frozen=True)
class CvatShape:
    """One colony as a CVAT shape, independent of frame and label ids.

    Attributes:
        label: the class name (CVAT label name).
        type: ``"polygon"`` or ``"mask"``.
        points: CVAT ``points`` of that type (see the module docstring).
        score: the colony's score in [0, 1].
    """

    label: str
    type: ShapeType
    points: list[float]
    score: float


def label_spec(encoding: MaskEncoding) -> list[dict[str, Any]]:
    """CVAT label spec of the colony classes: ``[{"id", "name", "type": "mask"}, ...]``.

    Ids are the classes' pixel values; names are unique (the taxonomy guarantees it), as
    CVAT's lambda manager requires.
    """
    return [
        {"id": value, "name": encoding.label_names[value], "type": "mask"}
        for value in encoding.colony_values
    ]


def polygon_points(instance: CoralInstance) -> list[float]:
    """Flat ``[x, y, ...]`` outline of the colony's largest part, image pixel coordinates."""
    polygons = mask_to_polygons(instance.mask)
    if not polygons:
        raise ValueError(f"colony {instance.label!r} has an empty mask")
    largest = max(polygons, key=lambda polygon: polygon.area)
    x, y = instance.bbox[:2]
    ring = largest.exterior + np.array([x, y], dtype=np.float64)
    return [round(float(v), 2) for v in ring.ravel()]


def cvat_mask_points(instance: CoralInstance) -> list[int]:
    """CVAT mask-shape points of the colony: runs over its box, then the inclusive box."""
    points = mask_to_cvat_points(instance.mask)
    x, y = instance.bbox[:2]
    left, top, right, bottom = points[-4:]
    return [*points[:-4], left + x, top + y, right + x, bottom + y]


def nuclio_mask(instance: CoralInstance) -> list[int]:
    """Nuclio detector ``mask``: the box's pixels row-major as 0/255, then ``xtl, ytl, xbr,
    ybr`` (inclusive)."""
    x, y, w, h = instance.bbox
    flat = (instance.mask.astype(np.uint8) * 255).ravel().tolist()
    return [*flat, x, y, x + w - 1, y + h - 1]


def _kept(result: TwoStageResult, threshold: float | None) -> list[CoralInstance]:
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a score in [0, 1], got {threshold}")
    cut = 0.0 if threshold is None else threshold
    return [i for i in result.instances.instances if i.score >= cut]


def nuclio_detections(
    result: TwoStageResult, threshold: float | None = None
) -> list[dict[str, Any]]:
    """CVAT's Nuclio detector response for one image: one item per colony scoring at least
    ``threshold`` (all colonies when None)."""
    return [
        {
            "label": instance.label,
            "confidence": str(instance.score),
            "type": "mask",
            "points": polygon_points(instance),
            "mask": nuclio_mask(instance),
            "attributes": [],
        }
        for instance in _kept(result, threshold)
    ]


def cvat_shapes(
    result: TwoStageResult, conv_mask_to_poly: bool, threshold: float | None = None
) -> list[CvatShape]:
    """The colonies of one image as CVAT shapes: polygons or masks."""
    return [
        CvatShape(instance.label, "polygon", polygon_points(instance), instance.score)
        if conv_mask_to_poly
        else CvatShape(instance.label, "mask", cvat_mask_points(instance), instance.score)
        for instance in _kept(result, threshold)
    ]
