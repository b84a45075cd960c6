"""The plain data every annotation reader returns: images with their labelled colony shapes.

Coordinates are CVAT/COCO pixel coordinates as in :mod:`coral_core.formats.polygons`: pixel
``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``, x runs right, y down.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.formats.cvat_polylines import DEFAULT_MASK_TOLERANCE, PolylineSpec
from coral_core.formats.polygons import Polygon, mask_to_polygons, normalized_rings

ShapeKind = Literal["polygon", "polyline", "mask", "points"]


class AnnotationFormatError(CoralsegError):
    """An annotation file cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True, eq=False)
class AnnotationShape:
    """One colony outline as it was drawn.

    Exactly one of ``polygons``, ``path`` or ``mask`` carries the geometry, by ``kind``:

    * ``"polygon"``: ``polygons`` holds one :class:`Polygon` per part (a CVAT polygon has
      one; a COCO annotation may have several, which together are one object);
    * ``"polyline"``: ``path`` is the open line, a ``(K, 2)`` float64 array, ``K >= 2``;
    * ``"mask"``: ``mask`` is a ``(h, w)`` bool array covering the pixels
      ``[top : top + h, left : left + w]`` of the image (``offset = (left, top)``);
    * ``"points"``: ``path`` holds point labels, a ``(K, 2)`` float64 array of ``(x, y)``,
      ``K >= 1``, every point of the shape's class (a point survey's row is one point; a CVAT
      ``points`` shape may hold several).

    Attributes:
        label: the label name as drawn.
        kind: ``polygon``, ``polyline``, ``mask`` or ``points``.
        shape_id: the file's id of the shape (COCO annotation id), or None (CVAT XML has none).
        z_order: CVAT's drawing order (0 when the file has none).
        occluded: CVAT's occluded flag.
        attributes: the shape's other attributes, as strings.
    """

    label: str
    kind: ShapeKind
    polygons: tuple[Polygon, ...] = ()
    path: np.ndarray | None = None
    mask: np.ndarray | None = None
    offset: tuple[int, int] = (0, 0)
    shape_id: int | None = None
    z_order: int = 0
    occluded: bool = False
    attributes: dict[str, str] = field(default_factory=dict)

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """A mask shape as an ``(height, width)`` bool array of the whole image."""
        if self.mask is None:
            raise ValueError(f"a {self.kind} shape has no mask")
        out = np.zeros((height, width), dtype=bool)
        left, top = self.offset
        h, w = self.mask.shape
        out[top : top + h, left : left + w] = self.mask[: height - top, : width - left]
        return out


@dataclass(frozen=True)
class AnnotatedImage:
    """One image of an annotation file and its colony shapes.

    Attributes:
        name: the image's file name as the file records it (may hold sub-folders).
        width, height: the image size in pixels the coordinates refer to; 0 when the file
            does not record it (CoralNet's CSV: coordinates are pixels of the photo).
        shapes: its polygons, polylines and masks, in file order.
        subset: the CVAT subset (``Train``, ``Validation``, ...) or None.
        image_id: the file's id of the image (CVAT frame number, COCO image id), or None.
        task_id: the CVAT task the image belongs to (project exports), or None.
        metadata: the file's other fields for the image (a CoralNet CSV's date, aux
            fields, ...), as strings.
        in_photo_pixels: False when ``width``, ``height`` and the coordinates are in a unit
            proportional to the photo's pixels (CPCe's, 15 to a pixel at 96 DPI):
            :func:`fit_to_photo` scales them to the photo.
    """

    name: str
    width: int
    height: int
    shapes: tuple[AnnotationShape, ...] = ()
    subset: str | None = None
    image_id: int | str | None = None
    task_id: int | None = None
    metadata: dict[str, str] = field(default_factory=dict, compare=False)
    in_photo_pixels: bool = True


@dataclass(frozen=True)
class AnnotationSet:
    """What one annotation file holds.

    Attributes:
        source: the file it was read from (for messages).
        format: ``cvat-xml`` or ``coco``.
        images: every image the file lists, annotated or not.
        labels: the label names the file declares (CVAT labels, COCO categories), in order.
        skipped: shapes that are not colonies (``rectangle``, ``points``, ``ellipse``,
            ``track``, ...) and invalid ones (``invalid polygon``), counted by kind.
    """

    source: str
    format: str
    images: tuple[AnnotatedImage, ...]
    labels: tuple[str, ...] = ()
    skipped: Counter = field(default_factory=Counter)

    @property
    def shape_count(self) -> int:
        return sum(len(image.shapes) for image in self.images)

    def label_counts(self) -> Counter:
        """How many shapes carry each label."""
        return Counter(shape.label for image in self.images for shape in image.shapes)


def shape_polylines(
    shape: AnnotationShape, width: int, height: int, tolerance: float = DEFAULT_MASK_TOLERANCE
) -> list[PolylineSpec]:
    """The FiftyOne-style polylines of one shape, in the layout ``coralseg pull-cvat`` writes
    (:mod:`coral_core.formats.cvat_polylines`): a closed, filled polyline per polygon part and per
    8-connected mask part (``[exterior, *holes]``), an open one per polyline; normalised by
    the image's ``width`` and ``height``. ``tolerance`` (pixels) simplifies mask outlines as
    :func:`coral_core.formats.polygons.mask_to_polygons` does (0.25 or less keeps them exact).
    """
    attributes = {
        "cvat_shape_id": shape.shape_id,
        "z_order": shape.z_order,
        "occluded": shape.occluded,
        "cvat_shape_type": shape.kind,
    }
    if shape.kind == "polyline":
        scale = np.array([width, height], dtype=np.float64)
        line = [(float(x), float(y)) for x, y in np.asarray(shape.path) / scale]
        return [PolylineSpec(shape.label, [line], False, False, attributes)]
    if shape.kind == "mask":
        offset = np.array(shape.offset, dtype=np.float64)
        polygons = [
            Polygon(p.exterior + offset, tuple(hole + offset for hole in p.holes))
            for p in mask_to_polygons(shape.mask, tolerance=tolerance)
        ]
    else:
        polygons = list(shape.polygons)
    return [
        PolylineSpec(
            shape.label,
            [[(x, y) for x, y in ring] for ring in normalized_rings(polygon, width, height)],
            True,
            True,
            dict(attributes),
        )
        for polygon in polygons
    ]


def fit_to_photo(image: AnnotatedImage, width: int, height: int) -> AnnotatedImage:
    """``image`` in the pixels of its ``width`` x ``height`` photo, for point-label files.

    Fills in the size a file does not record (0), scales the points of a file in other units
    (``in_photo_pixels=False``) and checks that every point lies on the photo.

    Raises:
        ValueError: a point outside the photo, or a scaled image with shapes other than points.
    """
    if image.in_photo_pixels and image.width and image.height:
        return image
    if image.in_photo_pixels:
        scale = np.array([1.0, 1.0])
    else:
        if any(shape.kind != "points" for shape in image.shapes):
            raise ValueError(f"{image.name}: only point labels can be scaled to the photo")
        scale = np.array([width / image.width, height / image.height])
    shapes = []
    for shape in image.shapes:
        if shape.kind != "points":
            shapes.append(shape)
            continue
        path = np.asarray(shape.path, dtype=np.float64) * scale
        outside = (path < 0).any(axis=1) | (path[:, 0] >= width) | (path[:, 1] >= height)
        if outside.any():
            x, y = path[outside][0]
            raise ValueError(
                f"{image.name}: a {shape.label!r} point at column {x:.0f}, row {y:.0f} lies "
                f"outside the {width}x{height} photo; check that the file belongs to this photo"
            )
        shapes.append(replace(shape, path=path))
    return replace(image, width=width, height=height, shapes=tuple(shapes), in_photo_pixels=True)
