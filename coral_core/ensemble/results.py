"""COCO instance predictions as *result sets*: parsed, checked, written back.

A *result set* is what one model predicted: its COCO results (:class:`coral_core.formats.coco.
CocoResult`, one mask, category and score each, read and written by :mod:`coral_core.formats.coco`)
with the images and categories their ids refer to, checked together. Merging result sets is
:mod:`coral_core.ensemble.fusion`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from coral_core.errors import CoralsegError
from coral_core.formats.coco import (
    CocoResult,
    ImageId,
    ImageInfo,
    coco_image,
    coco_result_annotation,
    parse_categories,
    parse_images,
    parse_results,
)


@dataclass(frozen=True)
class ResultSet:
    """The predictions of one model (or of an ensemble).

    Attributes:
        name: shown in messages and reports, e.g. the file it came from.
        images: image id -> :class:`ImageInfo` (with that id).
        categories: category id -> category name.
        instances: every instance refers to an image and a category listed here, and its
            mask has its image's size.

    Raises:
        CoralsegError: an instance refers to an unlisted image or category, or its mask
            has another size than its image.
    """

    name: str
    images: Mapping[ImageId, ImageInfo]
    categories: Mapping[int, str]
    instances: tuple[CocoResult, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", MappingProxyType(dict(self.images)))
        object.__setattr__(self, "categories", MappingProxyType(dict(self.categories)))
        object.__setattr__(self, "instances", tuple(self.instances))
        for image_id, image in self.images.items():
            if image.id != image_id:
                raise CoralsegError(
                    f"{self.name}: image {image.file_name!r} is listed under id {image_id!r} "
                    f"but has id {image.id!r}"
                )
        for number, instance in enumerate(self.instances, start=1):
            image = self.images.get(instance.image_id)
            if image is None:
                raise CoralsegError(
                    f"{self.name}: prediction #{number} refers to image_id "
                    f"{instance.image_id!r}, which is not among its images; give the images "
                    "list the predictions were made on"
                )
            if instance.category_id not in self.categories:
                raise CoralsegError(
                    f"{self.name}: prediction #{number} refers to category_id "
                    f"{instance.category_id!r}, which is not among its categories "
                    f"({_some(sorted(self.categories))}); give the categories the model was "
                    "trained with"
                )
            height, width = instance.rle["size"]
            if (height, width) != (image.height, image.width):
                raise CoralsegError(
                    f"{self.name}: prediction #{number} has a {width}x{height} mask but its "
                    f"image {image.file_name!r} is {image.width}x{image.height} "
                    "(width x height); masks must cover the whole image at its own size, so "
                    "check that the images list is the one inference ran on"
                )


def result_set_from_coco(
    results: object, categories: object, images: object, name: str = "predictions"
) -> ResultSet:
    """A result set from COCO data as loaded from JSON.

    Args:
        results: COCO results, ``[{"image_id", "category_id", "segmentation", "score"}]``
            (:func:`coral_core.formats.coco.parse_results`).
        categories: ``[{"id", "name"}, ...]`` as in a COCO file, or ``{id: name}``.
        images: ``[{"id", "file_name", "width", "height"}, ...]`` as in a COCO file.
        name: names the source in error messages and reports.

    Raises:
        CoralsegError: the data is not COCO or inconsistent; the message says where.
    """
    image_map = parse_images(images, name)
    category_map = parse_categories(categories, name)
    instances = parse_results(results, image_map, name)
    return ResultSet(name, image_map, category_map, tuple(instances))


def result_set_to_coco(result_set: ResultSet) -> dict[str, Any]:
    """COCO data of a result set: ``{"images", "categories", "annotations"}``.

    The annotations are COCO results with ``id``, ``bbox`` (``[x, y, w, h]`` of the mask),
    ``area`` (its pixel count) and ``iscrowd: 0`` added, so the dict loads as a COCO
    dataset (``pycocotools.coco.COCO``) and its annotations as results (``loadRes``).
    """
    annotations = [
        coco_result_annotation(number, result)
        for number, result in enumerate(result_set.instances, start=1)
    ]
    return {
        "images": [
            coco_image(i.id, i.file_name, i.width, i.height) for i in result_set.images.values()
        ],
        "categories": [{"id": k, "name": v} for k, v in result_set.categories.items()],
        "annotations": annotations,
    }


def _some(values: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "") if values else "none"
