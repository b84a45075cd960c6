"""COCO instance-segmentation files from coralseg instances (categories from the taxonomy)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from coral_core import __version__
from coral_core.inference.instances import CoralInstance
from coral_core.palette import to_hex
from coral_core.taxonomy import MaskEncoding


@dataclass(frozen=True)
class ImageInstances:
    """The instances found in one image."""

    file_name: str
    width: int
    height: int
    instances: Sequence[CoralInstance]


def categories(encoding: MaskEncoding) -> list[dict[str, Any]]:
    """COCO categories: one per taxonomy class, id = its pixel value (background has none)."""
    return [
        {
            "id": encoding.value_of(name),
            "name": name,
            "supercategory": "coral",
            "color": to_hex(color),
        }
        for name, color in zip(encoding.taxonomy.classes, encoding.taxonomy.colors, strict=True)
    ]


def coco_predictions(images: Iterable[ImageInstances], encoding: MaskEncoding) -> dict[str, Any]:
    """A COCO dataset dict whose annotations carry scores (RLE masks).

    It loads with ``pycocotools.coco.COCO``, and its ``annotations`` list is also a valid
    results list for ``COCO.loadRes``.
    """
    coco_images, annotations = [], []
    for image_id, image in enumerate(images, start=1):
        coco_images.append(
            {
                "id": image_id,
                "file_name": image.file_name,
                "width": image.width,
                "height": image.height,
            }
        )
        for instance in image.instances:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": instance.value,
                    "segmentation": instance.rle,
                    "area": instance.area,
                    "bbox": list(instance.bbox),
                    "iscrowd": 0,
                    "score": instance.score,
                }
            )
    return {
        "info": {
            "description": "coralseg predictions",
            "version": __version__,
            "date_created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "taxonomy": encoding.taxonomy.name,
        },
        "images": coco_images,
        "annotations": annotations,
        "categories": categories(encoding),
    }
