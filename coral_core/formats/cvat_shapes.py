"""CVAT's encodings of coralseg colonies, as plain data (no cvat_sdk, no nuclio_sdk).

The Nuclio function, the cvat-sdk function and the webhook bridge all turn a
:class:`~coral_core.inference.instances.TwoStageResult` into CVAT shapes here, so the three
write the same shapes for the same image.

* A colony as a CVAT **polygon**: the outline of its largest connected part, flat
  ``[x0, y0, x1, y1, ...]`` in image pixel coordinates (CVAT's: pixel ``(i, j)`` covers
  ``[j, j + 1) x [i, i + 1)``), traced so that rasterizing it the way CVAT exports polygons
  gives the part back within half a pixel (:func:`coral_core.formats.polygons.mask_to_polygons`).
  CVAT polygons have no holes and one part, so holes and smaller parts are only kept by
  masks.
* A colony as a CVAT **mask shape** (REST API and cvat-sdk): ``[runs..., left, top, right,
  bottom]`` (:func:`coral_core.formats.rle.mask_to_cvat_points`), box inclusive.
* A colony in a **Nuclio detector** response: ``mask`` is the colony's box flattened
  row-major with 0/255 values, followed by ``xtl, ytl, xbr, ybr`` (inclusive), as CVAT's own
  serverless functions send it; ``points`` carries the polygon, which CVAT uses when the
  user asks to convert masks to polygons.

Only colony classes are sent (cover-only classes have no colonies), so a function's label
spec lists exactly the colony classes.

Two rules of CVAT's are kept here, for every coralseg path that writes into CVAT:

* **Label types** (:func:`label_accepts`): CVAT's model runner maps a function's label onto a
  task label when their types are equal, when either is ``any``, or when one is ``mask``
  and the other ``polygon`` (cvat-ui ``labelsCompatible`` in the model runner's labels
  mapper). Colonies are masks, or polygons with "convert masks to
  polygons", so they go into labels of type ``mask``, ``polygon`` or ``any``. The cvat-sdk
  auto-annotation driver is stricter (``_AnnotationMapper._are_label_types_compatible``:
  equal types or ``any``); cvat-sdk applies it itself.
* **A person's shapes win** (:func:`overlap_of_smaller`): a predicted colony covering at
  least ``PERSON_OVERLAP`` of a shape a person drew on the same frame, or of which that
  shape covers that share, is the same colony seen twice and is not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from coral_core.formats.polygons import mask_to_polygons
from coral_core.formats.rle import mask_to_cvat_points
from coral_core.inference.instances import CoralInstance, TwoStageResult
from coral_core.labels.taxonomy import MaskEncoding

ShapeType = Literal["polygon", "mask"]
COLONY_LABEL_TYPES = ("mask", "polygon", "any")
# Overlap (of the smaller shape's area) from which a predicted colony and a person's shape
# are taken for one colony. Half the smaller one: neighbouring colonies that touch share a
# thin border, a colony drawn twice shares most of the smaller outline.
PERSON_OVERLAP = 0.5


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


def label_accepts(label_type: str) -> bool:
    """Whether a CVAT label of ``label_type`` takes colonies (module docstring)."""
    return label_type in COLONY_LABEL_TYPES


@dataclass(frozen=True)
class ShapeRegion:
    """The pixels of a CVAT shape: ``mask`` (bool) placed with its top-left at ``(x, y)``."""

    x: int
    y: int
    mask: np.ndarray

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))


def shape_region(shape_type: str, points: list[float]) -> ShapeRegion | None:
    """The pixels of a CVAT ``mask``, ``polygon`` or ``rectangle`` shape, over its own box
    (cost ~ the shape, not the image); None for types without an area (points, polylines,
    ...) or degenerate shapes.

    Polygons and rectangles cover the pixels whose centres lie inside them (CVAT's pixel
    ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``).
    """
    values = np.asarray(points, dtype=np.float64)
    if shape_type == "mask":
        if values.size < 5:
            return None
        left, top, right, bottom = (int(v) for v in values[-4:])
        width, height = right - left + 1, bottom - top + 1
        runs = values[:-4].astype(np.int64)
        if width < 1 or height < 1 or (runs < 0).any() or runs.sum() != width * height:
            return None
        foreground = np.arange(runs.size) % 2 == 1  # runs alternate, background first
        return ShapeRegion(left, top, np.repeat(foreground, runs).reshape(height, width))
    if shape_type == "rectangle" and values.size == 4:
        x0, y0, x1, y1 = values
        values = np.array([x0, y0, x1, y0, x1, y1, x0, y1])
    elif shape_type != "polygon" or values.size < 6:
        return None
    ring = values.reshape(-1, 2)
    left, top = np.floor(ring.min(axis=0)).astype(int)
    right, bottom = np.ceil(ring.max(axis=0)).astype(int)
    if right <= left or bottom <= top:
        return None
    canvas = np.zeros((bottom - top, right - left), np.uint8)
    # cv2 fills pixels by their centres when vertices are given in pixel-index space
    # (x - 0.5); 4 fractional bits keep sub-pixel vertices.
    shifted = np.round((ring - [left, top] - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [shifted], 1, lineType=cv2.LINE_8, shift=4)
    return ShapeRegion(int(left), int(top), canvas.astype(bool))


def overlap_of_smaller(a: ShapeRegion, b: ShapeRegion) -> float:
    """Shared pixels of two regions over the area of the smaller one, in [0, 1]."""
    smaller = min(a.area, b.area)
    if smaller == 0:
        return 0.0
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1 = min(a.x + a.mask.shape[1], b.x + b.mask.shape[1])
    y1 = min(a.y + a.mask.shape[0], b.y + b.mask.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 0.0
    window_a = a.mask[y0 - a.y : y1 - a.y, x0 - a.x : x1 - a.x]
    window_b = b.mask[y0 - b.y : y1 - b.y, x0 - b.x : x1 - b.x]
    return int(np.count_nonzero(window_a & window_b)) / smaller
