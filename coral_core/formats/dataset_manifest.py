"""``manifest.json`` of a ``coralseg prepare`` folder: what its label masks mean and hold.

The file (JSON object, format tag :data:`DATASET_FORMAT`)::

    {"format": "coralseg-mmseg-dataset/1", "coralseg_version": "...", "created": "...Z",
     "source": {...free-form...}, "encoding": MaskEncoding.to_dict(),
     "long_side": 1024 | null,
     "splits": {"train": {"samples": 12, "pixels": {"background": 9000, ...}}, ...},
     "dropped_shapes": {"reason": count}, "skipped_unknown_labels": {"label": count},
     "point_labels": {"mode": "sparse" | "superpixels", "radius": 2,
                      "samples": {"train": 8, ...}}}

``point_labels`` is present only where some images were labelled by points
(:mod:`coral_core.labels.point_labels`).

:func:`write_dataset_manifest` writes it and :func:`read_dataset_manifest` reads exactly
that back, refusing anything else with a sentence.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coral_core import __version__
from coral_core.atomic import write_json_atomically
from coral_core.errors import CoralsegError
from coral_core.formats.tagged_json import read_tagged_json
from coral_core.labels.taxonomy import MaskEncoding
from coral_core.training.splits import SPLITS

DATASET_FORMAT = "coralseg-mmseg-dataset/1"
MANIFEST_FILE = "manifest.json"
_KEYS = frozenset(
    {
        "format",
        "coralseg_version",
        "created",
        "source",
        "encoding",
        "long_side",
        "splits",
        "dropped_shapes",
        "skipped_unknown_labels",
    }
)
_OPTIONAL_KEYS = frozenset({"point_labels"})


@dataclass(frozen=True)
class SplitCounts:
    """One split's images and per-label pixel counts (label name -> pixels)."""

    samples: int
    pixels: Mapping[str, int]


@dataclass(frozen=True)
class PointLabelCounts:
    """How the images labelled by points became masks: ``mode`` ("sparse" or "superpixels"),
    the stamped disc's ``radius`` in pixels, and images per split labelled by points."""

    mode: str
    radius: int
    samples: Mapping[str, int]


@dataclass(frozen=True)
class DatasetManifest:
    """What ``manifest.json`` records (see the module docstring)."""

    encoding: MaskEncoding
    long_side: int | None
    splits: Mapping[str, SplitCounts]
    source: Mapping[str, Any] = field(default_factory=dict)
    dropped_shapes: Mapping[str, int] = field(default_factory=dict)
    skipped_unknown_labels: Mapping[str, int] = field(default_factory=dict)
    point_labels: PointLabelCounts | None = None
    coralseg_version: str = __version__
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": DATASET_FORMAT,
            "coralseg_version": self.coralseg_version,
            "created": self.created,
            "source": dict(self.source),
            "encoding": self.encoding.to_dict(),
            "long_side": self.long_side,
            "splits": {
                split: {"samples": counts.samples, "pixels": dict(counts.pixels)}
                for split, counts in self.splits.items()
            },
            "dropped_shapes": dict(self.dropped_shapes),
            "skipped_unknown_labels": dict(self.skipped_unknown_labels),
        }
        if self.point_labels is not None:
            data["point_labels"] = {
                "mode": self.point_labels.mode,
                "radius": self.point_labels.radius,
                "samples": dict(self.point_labels.samples),
            }
        return data


def write_dataset_manifest(folder: str | Path, manifest: DatasetManifest) -> Path:
    """Write ``folder/manifest.json`` atomically; returns its path."""
    path = Path(folder) / MANIFEST_FILE
    write_json_atomically(path, manifest.to_dict(), indent=2)
    return path


def read_dataset_manifest(folder: str | Path) -> DatasetManifest:
    """The manifest of a ``coralseg prepare`` folder.

    Raises:
        CoralsegError: the file is missing, not JSON, of another format or version, or a
            field is missing, unknown or of the wrong type.
    """
    path = Path(folder) / MANIFEST_FILE
    redo = "prepare the data folder again"
    absent = f"{folder} is not a prepared data folder (no {MANIFEST_FILE})"
    data = read_tagged_json(path, DATASET_FORMAT, _KEYS, redo, absent, optional=_OPTIONAL_KEYS)
    try:
        encoding = MaskEncoding.from_dict(data["encoding"])
        long_side = data["long_side"]
        if long_side is not None and (
            isinstance(long_side, bool) or not isinstance(long_side, int)
        ):
            raise ValueError(f"long_side must be an integer or null, got {long_side!r}")
        splits = {
            split: SplitCounts(
                _count(counts["samples"]), {str(k): _count(v) for k, v in counts["pixels"].items()}
            )
            for split, counts in _mapping(data["splits"]).items()
        }
        if set(splits) - set(SPLITS):
            raise ValueError(f"splits must be among {SPLITS}, got {sorted(splits)}")
        return DatasetManifest(
            encoding=encoding,
            long_side=long_side,
            splits=splits,
            source=_mapping(data["source"]),
            dropped_shapes={str(k): _count(v) for k, v in _mapping(data["dropped_shapes"]).items()},
            skipped_unknown_labels={
                str(k): _count(v) for k, v in _mapping(data["skipped_unknown_labels"]).items()
            },
            point_labels=_point_labels(data.get("point_labels")),
            coralseg_version=str(data["coralseg_version"]),
            created=str(data["created"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CoralsegError(f"{path} has a malformed field ({err}); {redo}") from None


def _point_labels(value: Any) -> PointLabelCounts | None:
    if value is None:
        return None
    value = _mapping(value)
    if value.get("mode") not in ("sparse", "superpixels"):
        raise ValueError(f"point_labels.mode must be sparse or superpixels, got {value!r}")
    samples = {str(k): _count(v) for k, v in _mapping(value["samples"]).items()}
    return PointLabelCounts(value["mode"], _count(value["radius"]), samples)


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {value!r}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a count (integer >= 0), got {value!r}")
    return value
