"""COCO instance-segmentation JSON: the one place that checks and builds its parts.

Reading: :func:`load_coco_json` loads a file, :func:`check_top_level` refuses missing or
unknown top-level keys (a misspelled ``"annotations"`` would otherwise read as no labels),
:func:`parse_images` and :func:`parse_categories` validate the ``images`` and
``categories`` lists, :func:`parse_results` a results list (``COCO.loadRes``'s input) into
:class:`CocoResult` records. Image ids are integers, or strings (Ultralytics writes file
stems); image ids and category ids must be unique. The annotation readers
(:mod:`coral_core.formats.annotations.coco`, :mod:`coral_core.ensemble.results`) build on
these.

Writing: :func:`coco_image` and :func:`coco_annotation` build the records every COCO file
coralseg writes is made of (:func:`coco_result_annotation` for a :class:`CocoResult`);
:func:`write_coco_predictions` streams coralseg's predicted colonies (categories from the
taxonomy) to a file.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as mask_utils

from coral_core import __version__
from coral_core.atomic import atomic_path
from coral_core.errors import CoralsegError
from coral_core.formats.polygons import validate_ring
from coral_core.formats.rle import coco_rle_area, coco_rle_bbox
from coral_core.labels.palette import to_hex
from coral_core.labels.taxonomy import MaskEncoding

if TYPE_CHECKING:  # only annotations: importing the inference stack here would pull in torch
    from coral_core.inference.instances import CoralInstance


TOP_LEVEL_KEYS = ("info", "licenses", "images", "annotations", "categories")
ImageId = int | str  # COCO ids are ints; Ultralytics writes file stems for other datasets


# --- Reading ---------------------------------------------------------------------------------


def load_coco_json(path: str | Path) -> Any:
    """The content of a JSON file.

    Raises:
        CoralsegError: the file is missing, unreadable or not JSON.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CoralsegError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise CoralsegError(f"{path} is a folder; give a COCO .json file") from None
    except OSError as err:
        raise CoralsegError(f"cannot read {path}: {err.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CoralsegError(f"{path} is not a JSON file ({err}); give a COCO .json file") from None


def check_top_level(data: Any, source: str, required: Sequence[str]) -> None:
    """Refuse COCO data that is not an object, lacks a ``required`` key, or has a key COCO
    does not define (:data:`TOP_LEVEL_KEYS`), such as a misspelled ``"annotations"``.

    Raises:
        CoralsegError: naming the keys and what COCO expects.
    """
    if not isinstance(data, Mapping):
        raise CoralsegError(
            f"{source} is not a COCO file: its top level is a {type(data).__name__}, not an "
            f"object with {', '.join(map(repr, required))}"
        )
    unknown = sorted(str(key) for key in data if key not in TOP_LEVEL_KEYS)
    missing = [key for key in required if key not in data]
    problems = []
    if missing:
        problems.append(f"has no {', '.join(map(repr, missing))}")
    if unknown:
        problems.append(f"has keys COCO does not define: {', '.join(map(repr, unknown))}")
    if problems:
        raise CoralsegError(
            f"{source} {' and '.join(problems)}; a COCO file's top-level keys are "
            f"{', '.join(map(repr, TOP_LEVEL_KEYS))} (check their spelling)"
        )


@dataclass(frozen=True)
class ImageInfo:
    """An image of a COCO file: its id there, file name and size in pixels.

    Raises:
        CoralsegError: width or height is not a positive integer.
    """

    id: ImageId
    file_name: str
    width: int
    height: int

    def __post_init__(self) -> None:
        image_size((self.height, self.width))  # raises unless both are positive ints


def parse_images(images: object, source: str) -> dict[ImageId, ImageInfo]:
    """The ``images`` list of a COCO file, by id.

    Raises:
        CoralsegError: not a list of ``{"id", "file_name", "width", "height"}`` records with
            unique integer (or string) ids, file names and positive integer sizes.
    """
    if not _is_list(images):
        raise CoralsegError(
            f'{source}: "images" must be a list of {{"id", "file_name", "width", "height"}} '
            f"records, got {type(images).__name__}"
        )
    parsed: dict[ImageId, ImageInfo] = {}
    for number, record in enumerate(images, start=1):
        where = f"{source}: image #{number}"
        if not isinstance(record, Mapping) or not all(
            k in record for k in ("id", "file_name", "width", "height")
        ):
            raise CoralsegError(
                f'{where} must be a record with "id", "file_name", "width", "height"'
            )
        image_id, file_name = record["id"], record["file_name"]
        if isinstance(image_id, bool) or not isinstance(image_id, int | str):
            raise CoralsegError(
                f"{where} has id {image_id!r}; image ids are integers (or file stems)"
            )
        if not isinstance(file_name, str) or not file_name.strip():
            raise CoralsegError(f"{where} has file_name {file_name!r}; it must be a file name")
        try:
            height, width = image_size((record["height"], record["width"]))
        except CoralsegError:
            raise CoralsegError(
                f"{where} ({file_name!r}) has width {record['width']!r} and height "
                f"{record['height']!r}; both must be positive whole numbers of pixels"
            ) from None
        if image_id in parsed:
            raise CoralsegError(f"{where} repeats image id {image_id!r}; image ids must be unique")
        parsed[image_id] = ImageInfo(image_id, file_name, width, height)
    return parsed


def parse_categories(categories: object, source: str) -> dict[int, str]:
    """The ``categories`` of a COCO file (a list of ``{"id", "name"}`` or ``{id: name}``).

    Raises:
        CoralsegError: ids that are not unique integers, or names that are empty.
    """
    if isinstance(categories, Mapping):
        items = list(categories.items())
    elif _is_list(categories):
        items = []
        for number, record in enumerate(categories, start=1):
            if not isinstance(record, Mapping) or "id" not in record or "name" not in record:
                raise CoralsegError(
                    f'{source}: category #{number} must be a record with "id" and "name"'
                )
            items.append((record["id"], record["name"]))
    else:
        raise CoralsegError(
            f'{source}: "categories" must be a list of {{"id", "name"}} records, '
            f"got {type(categories).__name__}"
        )
    parsed: dict[int, str] = {}
    for category_id, label in items:
        if isinstance(category_id, bool) or not isinstance(category_id, int):
            raise CoralsegError(f"{source}: category id {category_id!r} is not an integer")
        if not isinstance(label, str) or not label.strip():
            raise CoralsegError(
                f"{source}: category {category_id} has name {label!r}; it needs one"
            )
        if category_id in parsed:
            raise CoralsegError(f"{source}: category id {category_id} is listed twice")
        parsed[category_id] = label
    return parsed


@dataclass(frozen=True)
class CocoResult:
    """One record of a COCO results list (``COCO.loadRes``): a scored mask of one category
    in one image, as a model (coralseg or any other tool) predicted it. Its ids refer to the
    images and categories its file came with; a colony coralseg found, with its class name
    and box, is :class:`coral_core.inference.instances.CoralInstance`.

    Attributes:
        image_id: the :class:`ImageInfo` id of its image.
        category_id: its category id.
        score: confidence, a finite number >= 0.
        rle: COCO RLE of the whole image, stored read-only as
            ``{"size": (H, W), "counts": str}`` (bytes counts are decoded; uncompressed
            counts are not accepted here, :func:`parse_results` converts them).

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


def parse_results(
    results: object, images: Mapping[ImageId, ImageInfo], source: str
) -> list[CocoResult]:
    """A COCO results list as loaded from JSON, on its ``images`` (:func:`parse_images`).

    Args:
        results: ``[{"image_id", "category_id", "segmentation", "score"}]``;
            ``segmentation`` is an RLE (compressed or uncompressed counts) or polygons
            ``[[x0, y0, x1, y1, ...], ...]`` (a single flat ring is accepted too). Other
            keys (``bbox``, ``area``, ``id``) are ignored: boxes and areas follow the masks.
        source: names the file in error messages.

    Raises:
        CoralsegError: not a list of such records, or one refers to an image not in
            ``images`` or has a mask of another size; the message says which record.
    """
    if not _is_list(results):
        raise CoralsegError(
            f"{source}: COCO results must be a list of predictions, got {type(results).__name__}"
        )
    parsed = []
    for number, result in enumerate(results, start=1):
        where = f"{source}: prediction #{number}"
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
        image = images.get(result["image_id"])
        if image is None:
            raise CoralsegError(
                f"{where} refers to image_id {result['image_id']!r}, which is not among its "
                f"{len(images)} images; give the images list the predictions were made on"
            )
        try:
            rle = _segmentation_rle(result["segmentation"], image)
            parsed.append(CocoResult(image.id, result["category_id"], result["score"], rle))
        except ValueError as err:  # CoralsegError included: add where it happened
            raise CoralsegError(f"{where}: {err}") from None
    return parsed


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


def image_size(size: object) -> tuple[int, int]:
    """``(H, W)`` from a ``[H, W]`` pair of positive integers.

    Raises:
        CoralsegError: anything else.
    """
    if (
        not _is_list(size)
        or len(size) != 2
        or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size)
        or min(size) <= 0
    ):
        raise CoralsegError(f"a mask size must be [height, width] in pixels, got {size!r}")
    return int(size[0]), int(size[1])


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


# --- Writing ---------------------------------------------------------------------------------


def coco_image(image_id: ImageId, file_name: str, width: int, height: int) -> dict[str, Any]:
    """A COCO ``images`` record."""
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


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


def coco_annotation(
    annotation_id: int,
    image_id: ImageId,
    category: int,
    segmentation: dict[str, Any] | list[list[float]],
    bbox: Sequence[float],
    area: float,
    *,
    score: float | None = None,
    iscrowd: int = 0,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One COCO annotation; with a ``score`` a predicted instance.

    A scored annotation is valid both in a COCO dataset (``pycocotools.coco.COCO``) and as
    a result for ``COCO.loadRes``. ``segmentation`` is a full-image COCO RLE or polygons
    (flat ``x0, y0, x1, y1, ...`` lists), ``bbox`` ``(x, y, w, h)`` pixels; ``attributes``
    are CVAT's (``occluded`` and the label's attributes).
    """
    annotation = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category,
        "segmentation": segmentation,
        "area": area,
        "bbox": list(bbox),
        "iscrowd": iscrowd,
    }
    if score is not None:
        annotation["score"] = score
    if attributes is not None:
        annotation["attributes"] = dict(attributes)
    return annotation


def coco_result_annotation(annotation_id: int, result: CocoResult) -> dict[str, Any]:
    """A :class:`CocoResult` as a scored COCO annotation (:func:`coco_annotation`): ``bbox``
    and ``area`` follow its mask, so it loads in a COCO dataset and through ``loadRes``."""
    rle = {"size": list(result.rle["size"]), "counts": result.rle["counts"]}
    return coco_annotation(
        annotation_id,
        result.image_id,
        result.category_id,
        rle,
        coco_rle_bbox(rle),
        coco_rle_area(rle),
        score=result.score,
    )


def _entries(
    images: Iterable[ImageInstances], encoding: MaskEncoding
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """``(COCO image, its annotations)`` per image, ids numbered from 1."""
    annotation_id = 0
    for image_id, image in enumerate(images, start=1):
        annotations = []
        for instance in image.instances:
            annotation_id += 1
            annotations.append(
                coco_annotation(
                    annotation_id,
                    image_id,
                    category_id(encoding, instance.label),
                    instance.coco_rle(image.height, image.width),
                    instance.bbox,
                    instance.area,
                    score=instance.score,
                )
            )
        yield coco_image(image_id, image.file_name, image.width, image.height), annotations


def coco_predictions(images: Iterable[ImageInstances], encoding: MaskEncoding) -> dict[str, Any]:
    """A COCO dataset dict whose annotations carry scores (RLE masks).

    It loads with ``pycocotools.coco.COCO``, and its ``annotations`` list is also a valid
    results list for ``COCO.loadRes``.
    """
    data = _header(encoding) | {"images": [], "annotations": []}
    for image_record, entries in _entries(images, encoding):
        data["images"].append(image_record)
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
                for index, (image_record, entries) in enumerate(_entries(images, encoding)):
                    out.write(("," if index else "") + json.dumps(image_record))
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
