"""COCO instance predictions as *result sets*: parsed, checked, written back.

A *result set* is what one model predicted: COCO results (one mask, category and score per
instance) with the images and categories its ids refer to. Masks are COCO RLEs
``{"size": [H, W], "counts": str}`` of the whole image (see :mod:`coral_core.formats.rle`);
polygon segmentations are rasterized the way pycocotools does with the image's size.
Scores are numbers >= 0. Merging result sets is :mod:`coral_core.ensemble.fusion`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from coral_core.errors import CoralsegError
from coral_core.formats.coco import (
    ImageId,
    ImageInfo,
    coco_annotation,
    coco_image,
    image_size,
    parse_categories,
    parse_images,
)
from coral_core.formats.polygons import validate_ring
from coral_core.formats.rle import coco_rle_area, coco_rle_bbox


@dataclass(frozen=True)
class Instance:
    """One predicted instance.

    Attributes:
        image_id: the :class:`ImageInfo` id of its image in its result set.
        category_id: its category id in its result set.
        score: confidence, a finite number >= 0.
        rle: COCO RLE of the whole image, stored read-only as
            ``{"size": (H, W), "counts": str}`` (bytes counts are decoded; uncompressed
            counts are not accepted here, :func:`result_set_from_coco` converts them).

    Raises:
        CoralsegError: a score that is not a finite number >= 0, or a malformed RLE.
    """

    image_id: ImageId
    category_id: int
    score: float
    rle: Mapping[str, Any]

    def __post_init__(self) -> None:
        score = self.score
        if not _is_number(score) or not math.isfinite(score) or score < 0:
            raise CoralsegError(f"a score must be a finite number >= 0, got {score!r}")
        object.__setattr__(self, "score", float(score))
        rle = self.rle
        if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
            raise CoralsegError('a mask must be a COCO RLE {"size": [H, W], "counts": ...}')
        counts = rle["counts"]
        if isinstance(counts, bytes):
            counts = counts.decode()
        if not isinstance(counts, str):
            raise CoralsegError("an instance's RLE must have compressed (string) counts")
        size = image_size(rle["size"])
        object.__setattr__(self, "rle", MappingProxyType({"size": size, "counts": counts}))


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
    instances: tuple[Instance, ...] = ()

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
        results: COCO results, ``[{"image_id", "category_id", "segmentation", "score"}]``;
            ``segmentation`` is an RLE (compressed or uncompressed counts) or polygons
            ``[[x0, y0, x1, y1, ...], ...]`` (a single flat ring is accepted too). Other
            keys (``bbox``, ``area``, ``id``) are ignored: boxes and areas follow the masks.
        categories: ``[{"id", "name"}, ...]`` as in a COCO file, or ``{id: name}``.
        images: ``[{"id", "file_name", "width", "height"}, ...]`` as in a COCO file.
        name: names the source in error messages and reports.

    Raises:
        CoralsegError: the data is not COCO or inconsistent; the message says where.
    """
    image_map = parse_images(images, name)
    category_map = parse_categories(categories, name)
    if not _is_list(results):
        raise CoralsegError(
            f"{name}: COCO results must be a list of predictions, got {type(results).__name__}"
        )
    instances = []
    for number, result in enumerate(results, start=1):
        where = f"{name}: prediction #{number}"
        if not isinstance(result, Mapping):
            raise CoralsegError(f"{where} is not a JSON object; is this a COCO results file?")
        missing = [
            k for k in ("image_id", "category_id", "segmentation", "score") if k not in result
        ]
        if missing:
            raise CoralsegError(
                f"{where} has no {', '.join(missing)}; COCO instance predictions need "
                "image_id, category_id, segmentation and score"
            )
        image = image_map.get(result["image_id"])
        if image is None:
            raise CoralsegError(
                f"{where} refers to image_id {result['image_id']!r}, which is not among its "
                f"{len(image_map)} images; give the images list the predictions were made on"
            )
        try:
            rle = _segmentation_rle(result["segmentation"], image)
            instances.append(Instance(image.id, result["category_id"], result["score"], rle))
        except ValueError as err:  # CoralsegError included: add where it happened
            raise CoralsegError(f"{where}: {err}") from None
    return ResultSet(name, image_map, category_map, tuple(instances))


def result_set_to_coco(result_set: ResultSet) -> dict[str, Any]:
    """COCO data of a result set: ``{"images", "categories", "annotations"}``.

    The annotations are COCO results with ``id``, ``bbox`` (``[x, y, w, h]`` of the mask),
    ``area`` (its pixel count) and ``iscrowd: 0`` added, so the dict loads as a COCO
    dataset (``pycocotools.coco.COCO``) and its annotations as results (``loadRes``).
    """
    annotations = []
    for number, instance in enumerate(result_set.instances, start=1):
        rle = {"size": list(instance.rle["size"]), "counts": instance.rle["counts"]}
        annotations.append(
            coco_annotation(
                number,
                instance.image_id,
                instance.category_id,
                rle,
                coco_rle_bbox(rle),
                coco_rle_area(rle),
                score=instance.score,
            )
        )
    return {
        "images": [
            coco_image(i.id, i.file_name, i.width, i.height) for i in result_set.images.values()
        ],
        "categories": [{"id": k, "name": v} for k, v in result_set.categories.items()],
        "annotations": annotations,
    }


# --- Parsing COCO data ---------------------------------------------------------------------


def _segmentation_rle(segmentation: object, image: ImageInfo) -> dict[str, Any]:
    """The compressed COCO RLE of a segmentation (RLE or polygons) on ``image``."""
    height, width = image.height, image.width
    if isinstance(segmentation, Mapping):
        if "size" not in segmentation or "counts" not in segmentation:
            raise CoralsegError('an RLE segmentation needs "size" and "counts"')
        size = image_size(segmentation["size"])
        if size != (height, width):
            raise CoralsegError(
                f"its mask is {size[1]}x{size[0]} but image {image.file_name!r} is "
                f"{width}x{height} (width x height); masks must cover the whole image at its "
                "own size, so check that the images list is the one inference ran on"
            )
        coco_rle_area(segmentation)  # checks the runs cover exactly H * W pixels
        counts = segmentation["counts"]
        if isinstance(counts, list):
            counts = mask_utils.frPyObjects(
                {"size": [height, width], "counts": counts}, height, width
            )["counts"]
        return {"size": [height, width], "counts": counts}
    if _is_list(segmentation) and segmentation:
        rings = [segmentation] if all(_is_number(v) for v in segmentation) else segmentation
        checked = []
        for ring in rings:
            problem = validate_ring(ring) if _is_list(ring) else "malformed points"
            if problem not in (None, "zero area"):
                raise CoralsegError(
                    f"a polygon has {problem}; polygons are flat lists x0, y0, x1, y1, ... of "
                    "at least 3 points"
                )
            checked.append([float(v) for v in ring])
        merged = mask_utils.merge(mask_utils.frPyObjects(checked, height, width))
        return {"size": [height, width], "counts": merged["counts"]}
    raise CoralsegError(
        'a segmentation must be a COCO RLE {"size": [H, W], "counts": ...} or polygons '
        f"[[x0, y0, x1, y1, ...], ...], got {type(segmentation).__name__}"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _some(values: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "") if values else "none"
