"""The instance record of one image, ``instances/<image>.json`` of a ``coralseg infer`` output.

The file (JSON object)::

    {"file_name": "/path/to/image.jpg", "width": 4000, "height": 3000,
     "model_version": "3f2a...",            # the model that made it (coralseg infer)
     "instances": [{"label": "Acropora", "value": 2, "score": 0.93,
                    "bbox": [x, y, w, h], "area": 5120,
                    "box_rle": {"size": [h, w], "counts": "..."}}, ...],
     "tiled": true}                         # only for images processed tile by tile

Each colony's mask is the COCO RLE of its box (``size`` is the box's ``[h, w]``), so a
record costs what its colonies' boxes cost, not the image. :func:`write_instance_record`
writes it; :func:`read_instance_record` reads exactly that back and refuses anything else
with a sentence.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_core.atomic import write_json_atomically
from coral_core.errors import CoralsegError
from coral_core.formats.rle import coco_rle_to_mask, mask_to_coco_rle
from coral_core.inference.instances import CoralInstance

_RECORD_KEYS = frozenset({"file_name", "width", "height", "instances"})
_OPTIONAL_KEYS = frozenset({"tiled", "model_version"})
_INSTANCE_KEYS = frozenset({"label", "value", "score", "bbox", "area", "box_rle"})


@dataclass(frozen=True)
class InstanceRecord:
    """One image's colonies as ``coralseg infer`` recorded them."""

    file_name: str
    width: int
    height: int
    instances: tuple[CoralInstance, ...]
    tiled: bool = False
    model_version: str | None = None


def write_instance_record(path: str | Path, record: InstanceRecord) -> None:
    """Write ``record`` to ``path`` atomically (its presence marks the image as done)."""
    data: dict[str, Any] = {
        "file_name": record.file_name,
        "width": record.width,
        "height": record.height,
    }
    if record.model_version is not None:
        data["model_version"] = record.model_version
    data["instances"] = [_instance_json(instance) for instance in record.instances]
    if record.tiled:
        data["tiled"] = True
    write_json_atomically(path, data)


def read_instance_record(path: str | Path) -> InstanceRecord:
    """The record at ``path``.

    Raises:
        CoralsegError: the file is unreadable or not an instance record as
            :func:`write_instance_record` writes it; the message says which part.
    """
    path = Path(path)
    redo = "run inference on that image again"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CoralsegError(f"cannot read the instance record {path} ({err}); {redo}") from None
    if not isinstance(data, dict) or not data.keys() >= _RECORD_KEYS:
        raise CoralsegError(
            f"{path} is not an instance record (it needs {', '.join(sorted(_RECORD_KEYS))}); {redo}"
        )
    unknown = sorted(data.keys() - _RECORD_KEYS - _OPTIONAL_KEYS)
    if unknown:
        raise CoralsegError(f"{path} has fields an instance record does not define: {unknown}")
    width, height = data["width"], data["height"]
    if not (_is_count(width) and _is_count(height) and width > 0 and height > 0):
        raise CoralsegError(f"{path}: width and height must be positive integers; {redo}")
    if not isinstance(data["instances"], list) or data.get("tiled", True) is not True:
        raise CoralsegError(f"{path}: 'instances' must be a list and 'tiled' true; {redo}")
    model_version = data.get("model_version")
    if model_version is not None and not isinstance(model_version, str):
        raise CoralsegError(f"{path}: 'model_version' must be text; {redo}")
    instances = []
    for number, item in enumerate(data["instances"], start=1):
        try:
            instances.append(_instance_from_json(item))
        except (KeyError, TypeError, ValueError) as err:
            raise CoralsegError(
                f"instance {number} of {path} is malformed ({err}); {redo}"
            ) from None
    return InstanceRecord(
        str(data["file_name"]),
        width,
        height,
        tuple(instances),
        bool(data.get("tiled", False)),
        model_version,
    )


def read_model_version(path: str | Path) -> str | None:
    """The model version a record names, read without decoding its colonies (None: a record
    from before versions were recorded, or an unreadable one, which is then made again)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    version = data.get("model_version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def _instance_json(instance: CoralInstance) -> dict[str, Any]:
    return {
        "label": instance.label,
        "value": instance.value,
        "score": instance.score,
        "bbox": list(instance.bbox),
        "area": instance.area,
        "box_rle": mask_to_coco_rle(instance.mask),
    }


def _instance_from_json(item: Any) -> CoralInstance:
    if not isinstance(item, dict) or item.keys() != _INSTANCE_KEYS:
        found = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise ValueError(f"expected the fields {sorted(_INSTANCE_KEYS)}, got {found}")
    bbox = item["bbox"]
    if not (isinstance(bbox, Sequence) and len(bbox) == 4 and all(map(_is_count, bbox))):
        raise ValueError(f"bbox must be four integers x, y, w, h >= 0, got {bbox!r}")
    mask = coco_rle_to_mask(item["box_rle"])
    if mask.shape != (bbox[3], bbox[2]):
        raise ValueError(f"box_rle is {mask.shape[::-1]} pixels but the bbox is {bbox[2:]}")
    score, value, area = item["score"], item["value"], item["area"]
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0 <= score <= 1:
        raise ValueError(f"score must be a number in [0, 1], got {score!r}")
    if not (_is_count(value) and _is_count(area)) or not isinstance(item["label"], str):
        raise ValueError("label must be text, value and area integers >= 0")
    return CoralInstance(
        label=item["label"],
        value=value,
        score=float(score),
        bbox=(bbox[0], bbox[1], bbox[2], bbox[3]),
        mask=mask,
        area=area,
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
