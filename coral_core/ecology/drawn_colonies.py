"""Annotated colonies as drawn: one colony per polygon of an annotation file.

The annotated colonies of an image are its polygons (a CVAT for images 1.1 XML or COCO
instances JSON, read by :mod:`coral_core.formats.annotations`), one colony per polygon
(:func:`coral_core.ecology.colonies.annotated_colonies`; where polygons overlap, the smaller
one is on top, as ``coralseg prepare`` rasterizes them), not the connected regions of the
masks, which merge touching colonies of one genus and split a colony cut by another.
Images are matched by name without extension (folders joined by ``__``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_core.ecology.colonies import annotated_colonies
from coral_core.ecology.legend import ClassLegend
from coral_core.errors import CoralsegError
from coral_core.inference.instances import CoralInstance
from coral_core.labels.rasterize import LabeledPolyline, polyline_regions


@dataclass(frozen=True)
class DrawnImage:
    """One annotated image's polygons, in coordinates normalised by its size."""

    polylines: tuple[LabeledPolyline, ...]


def read_drawn_polygons(path: str | Path) -> dict[str, DrawnImage]:
    """Image name (without extension, folders joined by ``__``) -> its polygons.

    Raises:
        CoralsegError: the file is missing or not an annotation file coralseg reads.
    """
    from coral_core.formats.annotations import read_annotations, shape_polylines

    annotations = read_annotations(path)
    drawn = {}
    for image in annotations.images:
        polylines = []
        for shape in image.shapes:
            for spec in shape_polylines(shape, image.width, image.height):
                rings = tuple(np.asarray(ring, dtype=np.float64) for ring in spec.points)
                polylines.append(LabeledPolyline(spec.label, rings, spec.closed))
        name = str(Path(image.name).with_suffix("")).replace("/", "__").replace("\\", "__")
        drawn[name] = DrawnImage(tuple(polylines))
    if not drawn:
        raise CoralsegError(f"{path} annotates no image")
    return drawn


def drawn_colonies(
    drawn: DrawnImage, shape: tuple[int, int], legend: ClassLegend
) -> list[CoralInstance]:
    """The annotated colonies of one image at its mask's ``(H, W)`` size, as colony-class
    instances (labels that are not colony classes of the legend make no colony)."""
    values = {legend.name_of(v): v for v in legend.colony_values}
    kept = [p for p in drawn.polylines if p.label in values]
    regions, _ = polyline_regions(kept, *shape, values)
    return annotated_colonies(regions)


def images_without_polygons(polygons: Mapping[str, DrawnImage], names: Sequence[str]) -> list[str]:
    """The image names that have no polygons in the annotation file."""
    return [name for name in names if name not in polygons]
