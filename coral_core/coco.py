"""COCO instance-segmentation files from coralseg instances (categories from the taxonomy)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coral_core import __version__
from coral_core.atomic import atomic_path
from coral_core.palette import to_hex
from coral_core.taxonomy import MaskEncoding

if TYPE_CHECKING:  # only annotations: importing the inference stack here would pull in torch
    from coral_core.inference.instances import CoralInstance


@dataclass(frozen=True)
class ImageInstances:
    """The instances found in one image."""

    file_name: str
    width: int
    height: int
    instances: Sequence[CoralInstance]


def category_id(encoding: MaskEncoding, class_name: str) -> int:
    """COCO category id of a class: its 1-based position in the taxonomy.

    COCO reserves 0, so under background-as-ignore (where the first class has pixel value 0)
    ids are pixel value + 1; with a background class they equal the pixel values.
    """
    return encoding.taxonomy.class_position(class_name) + 1


def categories(encoding: MaskEncoding) -> list[dict[str, Any]]:
    """COCO categories: one per colony class (cover-only classes have no instances)."""
    colors = dict(zip(encoding.taxonomy.classes, encoding.taxonomy.colors, strict=True))
    return [
        {
            "id": category_id(encoding, name),
            "name": name,
            "supercategory": "coral",
            "color": to_hex(colors[name]),
        }
        for name in encoding.taxonomy.colony_classes
    ]


def _header(encoding: MaskEncoding) -> dict[str, Any]:
    return {
        "info": {
            "description": "coralseg predictions",
            "version": __version__,
            "date_created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "taxonomy": encoding.taxonomy.name,
        },
        "categories": categories(encoding),
    }


def scored_annotation(
    annotation_id: int,
    image_id: int | str,
    category: int,
    rle: dict[str, Any],
    score: float,
    bbox: Sequence[int],
    area: int,
) -> dict[str, Any]:
    """One predicted instance as a COCO annotation with its score.

    Valid both in a COCO dataset (``pycocotools.coco.COCO``) and as a result for
    ``COCO.loadRes``. ``rle`` is the full-image COCO RLE, ``bbox`` ``(x, y, w, h)`` pixels.
    """
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category,
        "segmentation": rle,
        "area": area,
        "bbox": list(bbox),
        "iscrowd": 0,
        "score": score,
    }


def _entries(
    images: Iterable[ImageInstances], encoding: MaskEncoding
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(COCO image, its annotations)`` per image, ids numbered from 1."""
    annotation_id = 0
    for image_id, image in enumerate(images, start=1):
        coco_image = {
            "id": image_id,
            "file_name": image.file_name,
            "width": image.width,
            "height": image.height,
        }
        annotations = []
        for instance in image.instances:
            annotation_id += 1
            annotations.append(
                scored_annotation(
                    annotation_id,
                    image_id,
                    category_id(encoding, instance.label),
                    instance.coco_rle(image.height, image.width),
                    instance.score,
                    instance.bbox,
                    instance.area,
                )
            )
        yield coco_image, annotations


def coco_predictions(images: Iterable[ImageInstances], encoding: MaskEncoding) -> dict[str, Any]:
    """A COCO dataset dict whose annotations carry scores (RLE masks).

    It loads with ``pycocotools.coco.COCO``, and its ``annotations`` list is also a valid
    results list for ``COCO.loadRes``.
    """
    data = _header(encoding) | {"images": [], "annotations": []}
    for coco_image, entries in _entries(images, encoding):
        data["images"].append(coco_image)
        data["annotations"].extend(entries)
    return data


def write_coco_predictions(
    path: str | Path, images: Iterable[ImageInstances], encoding: MaskEncoding
) -> int:
    """Write :func:`coco_predictions` to ``path`` image by image, never holding more than one
    image's instances; the file appears whole or not at all. Returns the annotation count."""
    count = 0
    with atomic_path(path) as temporary, Path(temporary).open("w", encoding="utf-8") as out:
        header = json.dumps(_header(encoding))
        out.write(header[:-1] + ', "images": [')
        annotation_file = Path(f"{temporary}.annotations")
        try:
            with annotation_file.open("w", encoding="utf-8") as pending:
                for index, (coco_image, entries) in enumerate(_entries(images, encoding)):
                    out.write(("," if index else "") + json.dumps(coco_image))
                    for annotation in entries:
                        pending.write(("," if count else "") + json.dumps(annotation))
                        count += 1
            out.write('], "annotations": [')
            with annotation_file.open(encoding="utf-8") as pending:
                shutil.copyfileobj(pending, out)
            out.write("]}")
        finally:
            annotation_file.unlink(missing_ok=True)
    return count
