"""COCO instance annotations (JSON) -> :class:`AnnotationSet`.

The parts read::

    {"images": [{"id": 1, "file_name": "q1.jpg", "width": 1380, "height": 920}, ...],
     "categories": [{"id": 1, "name": "Acropora"}, ...],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 1,
                      "segmentation": [[x0, y0, x1, y1, ...], ...]       # polygons, or
                                      {"size": [H, W], "counts": ...},   # RLE (iscrowd 1)
                      "attributes": {"occluded": false, ...}}, ...]}

Polygons are flat pixel coordinates; the polygons of one annotation are parts of one
object. RLE ``counts`` may be compressed (a string) or a list of runs, as CVAT writes masks.
An annotation without a segmentation (a box) is not a colony and is counted in
:attr:`AnnotationSet.skipped`, as are polygons with fewer than 3 points and empty masks.

COCO has no subsets; CVAT writes one file per subset, ``instances_<subset>.json``, and
:func:`read_coco` takes the subset from such a name.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.formats.annotations.model import (
    AnnotatedImage,
    AnnotationFormatError,
    AnnotationSet,
    AnnotationShape,
)
from coral_core.formats.coco import (
    check_top_level,
    coco_annotation,
    coco_image,
    parse_categories,
    parse_images,
)
from coral_core.formats.polygons import Polygon
from coral_core.formats.rle import coco_rle_area, coco_rle_bbox, coco_rle_to_mask, mask_to_coco_rle

FORMAT = "coco"
_SUBSET_PREFIX = "instances_"


def subset_from_filename(path: str | Path) -> str | None:
    """``Train`` for CVAT's ``instances_Train.json``; None for other names."""
    stem = Path(path).stem
    return stem[len(_SUBSET_PREFIX) :] or None if stem.startswith(_SUBSET_PREFIX) else None


def read_coco(path: str | Path, subset: str | None = None) -> AnnotationSet:
    """Read a COCO instances JSON file (see the module docstring).

    Args:
        path: the JSON file.
        subset: every image's subset; default: from an ``instances_<subset>.json`` name.

    Raises:
        AnnotationFormatError: the file is missing, is not JSON, or not COCO instances, or
            an annotation refers to an image or category the file does not define.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationFormatError(
            f"cannot read {path}: {getattr(err, 'strerror', None) or err}"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise AnnotationFormatError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}); "
            "export it again from CVAT as 'COCO 1.0'"
        ) from None
    return parse_coco(data, source=str(path), subset=subset or subset_from_filename(path))


def parse_coco(
    data: Any, source: str = "the COCO file", subset: str | None = None
) -> AnnotationSet:
    """Parse COCO instances already loaded from JSON (see :func:`read_coco`).

    The top level, images and categories are checked by :mod:`coral_core.formats.coco`: missing or
    unknown top-level keys, repeated image or category ids are refused.
    """
    try:
        check_top_level(data, source, ("images", "annotations", "categories"))
        parsed_images = parse_images(data["images"], source)
        names = parse_categories(data["categories"], source)
    except AnnotationFormatError:
        raise
    except CoralsegError as err:
        raise AnnotationFormatError(f"{err}; export it from CVAT as 'COCO 1.0'") from None
    annotations = data["annotations"]
    if not isinstance(annotations, list):
        raise AnnotationFormatError(f"{source}: 'annotations' must be a list")
    images = {
        image_id: {
            "id": image_id,
            "file_name": image.file_name,
            "width": image.width,
            "height": image.height,
            "shapes": [],
        }
        for image_id, image in parsed_images.items()
    }

    skipped: Counter = Counter()
    for index, annotation in enumerate(annotations):
        if not isinstance(annotation, Mapping):
            raise AnnotationFormatError(f"{source}: annotation {index} is not an object")
        image_id = annotation.get("image_id")
        category_id = annotation.get("category_id")
        where = f"{source}, annotation {annotation.get('id', index)!r}"
        if image_id not in images:
            raise AnnotationFormatError(
                f"{where} refers to image {image_id!r}, which the file does not list"
            )
        if category_id not in names:
            raise AnnotationFormatError(
                f"{where} refers to category {category_id!r}, which the file does not define"
            )
        image = images[image_id]
        shape, reason = _shape(annotation, names[category_id], image, where)
        if shape is None:
            skipped[reason] += 1
        else:
            image["shapes"].append(shape)
    return AnnotationSet(
        source=source,
        format=FORMAT,
        images=tuple(
            AnnotatedImage(
                name=entry["file_name"],
                width=entry["width"],
                height=entry["height"],
                shapes=tuple(entry["shapes"]),
                subset=subset,
                image_id=entry["id"],
            )
            for entry in images.values()
        ),
        labels=tuple(names.values()),
        skipped=skipped,
    )


def _shape(
    annotation: Mapping[str, Any], label: str, image: Mapping[str, Any], where: str
) -> tuple[AnnotationShape | None, str]:
    segmentation = annotation.get("segmentation")
    attributes = annotation.get("attributes")
    attributes = dict(attributes) if isinstance(attributes, Mapping) else {}
    occluded = bool(attributes.pop("occluded", False))
    z_order = attributes.pop("z_order", 0)
    common = {
        "label": label,
        "shape_id": annotation.get("id") if isinstance(annotation.get("id"), int) else None,
        "z_order": int(z_order) if isinstance(z_order, int | float) else 0,
        "occluded": occluded,
        "attributes": {str(k): str(v) for k, v in attributes.items()},
    }
    if not segmentation:
        return None, "rectangle"
    if isinstance(segmentation, Mapping):
        return _rle_shape(segmentation, image, where, common)
    if not isinstance(segmentation, list):
        raise AnnotationFormatError(
            f"{where}: 'segmentation' must be a list of polygons or an RLE object"
        )
    polygons = []
    for part in segmentation:
        try:
            flat = np.asarray(part, dtype=np.float64)
        except (TypeError, ValueError):
            flat = None
        if flat is None or flat.ndim != 1:
            raise AnnotationFormatError(
                f"{where}: a polygon must be a flat list of numbers x0, y0, x1, y1, ..."
            )
        if flat.size % 2 or flat.size < 6 or not np.isfinite(flat).all():
            continue
        polygons.append(Polygon(flat.reshape(-1, 2)))
    if not polygons:
        return None, "invalid polygon"
    return AnnotationShape(kind="polygon", polygons=tuple(polygons), **common), ""


def _rle_shape(
    rle: Mapping[str, Any], image: Mapping[str, Any], where: str, common: dict[str, Any]
) -> tuple[AnnotationShape | None, str]:
    size = rle.get("size")
    expected = [image["height"], image["width"]]
    if list(size or []) != expected:
        raise AnnotationFormatError(
            f"{where}: its RLE has size {size!r} but the image {image['file_name']!r} is "
            f"[height, width] = {expected}"
        )
    try:
        mask = coco_rle_to_mask(rle)
    except ValueError as err:
        raise AnnotationFormatError(f"{where}: {err}") from None
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None, "empty mask"
    cols = np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    box = np.ascontiguousarray(mask[top : bottom + 1, left : right + 1])
    box.setflags(write=False)
    return AnnotationShape(kind="mask", mask=box, offset=(left, top), **common), ""


def to_coco(images: Iterable[AnnotatedImage], labels: Iterable[str] = ()) -> dict[str, Any]:
    """COCO instances of ``images`` (JSON-safe): polygons as flat lists (holes cannot be
    written and are left out; use a mask), masks as compressed RLE with ``iscrowd`` 1.
    Open polylines have no area and are left out. Category ids are 1..N in label order.
    """
    images = list(images)
    declared = list(dict.fromkeys([*labels, *(s.label for i in images for s in i.shapes)]))
    category_ids = {name: index + 1 for index, name in enumerate(declared)}
    out_images, annotations = [], []
    for index, image in enumerate(images):
        image_id = image.image_id if image.image_id is not None else index + 1
        out_images.append(coco_image(image_id, image.name, image.width, image.height))
        for shape in image.shapes:
            if shape.kind == "polyline":
                continue
            if shape.kind == "mask":
                rle = mask_to_coco_rle(shape.full_mask(image.height, image.width))
                segmentation: Any = rle
                x, y, w, h = coco_rle_bbox(rle)
                area, crowd = float(coco_rle_area(rle)), 1
            else:
                segmentation = [p.exterior.ravel().tolist() for p in shape.polygons]
                x0 = min(p.bbox[0] for p in shape.polygons)
                y0 = min(p.bbox[1] for p in shape.polygons)
                x1 = max(p.bbox[2] for p in shape.polygons)
                y1 = max(p.bbox[3] for p in shape.polygons)
                x, y, w, h = x0, y0, x1 - x0, y1 - y0
                area, crowd = float(sum(p.area for p in shape.polygons)), 0
            annotations.append(
                coco_annotation(
                    shape.shape_id if shape.shape_id is not None else len(annotations) + 1,
                    image_id,
                    category_ids[shape.label],
                    segmentation,
                    (x, y, w, h),
                    area,
                    iscrowd=crowd,
                    attributes={"occluded": shape.occluded, **shape.attributes},
                )
            )
    return {
        "info": {"description": "written by coralseg"},
        "categories": [
            {"id": i, "name": name, "supercategory": ""} for name, i in category_ids.items()
        ],
        "images": out_images,
        "annotations": annotations,
    }
