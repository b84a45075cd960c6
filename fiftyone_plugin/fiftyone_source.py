"""Read the annotations of a FiftyOne dataset, in bulk, as :mod:`coral_core` export samples.

Labels are read with ``values()`` on the polyline sub-fields (one database aggregation per
field), never by loading sample documents one by one, which is what makes FiftyOne's own
mask export slow on dense annotations. Point labels (``fo.Keypoints``, as ``coralseg import``
stores CoralNet and CPCe surveys) are read the same way, when the dataset has them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.labels.point_labels import LabeledPoint
from coral_core.labels.rasterize import LabeledPolyline
from coral_core.training.mmseg_export import ExportSample
from coral_core.training.splits import random_split, split_from_tags


@dataclass
class SourceReport:
    """What was read, and which samples were left out and why."""

    samples: int = 0
    polylines: int = 0
    points: int = 0
    without_split: list[str] = field(default_factory=list)  # file paths
    randomly_split: Counter = field(default_factory=Counter)


def load_dataset(name: str):  # -> fiftyone.core.dataset.Dataset
    import fiftyone as fo

    if not fo.dataset_exists(name):
        known = ", ".join(sorted(fo.list_datasets())) or "none"
        raise CoralsegError(f"FiftyOne has no dataset {name!r} (datasets here: {known})")
    return fo.load_dataset(name)


def read_export_samples(
    dataset_or_view,
    field_name: str = "gt_polylines",
    split_ratios: Mapping[str, float] | None = None,
    seed: int = 0,
    points_field: str | None = None,
) -> tuple[list[ExportSample], SourceReport]:
    """Build export samples from a FiftyOne dataset or view.

    With ``points_field`` (an ``fo.Keypoints`` field), each sample also gets its point
    labels; a sample with points and no polylines is labelled by its points only.

    Splits come from sample tags (train/val/test, or validation...). Samples without a split
    tag are left out and listed in the report, unless ``split_ratios`` is given: then they are
    split reproducibly (by file path and ``seed``).

    Raises:
        CoralsegError: the field is missing or not a Polylines field; a sample has two split tags.
    """
    ids, paths, tags = dataset_or_view.values(["id", "filepath", "tags"])
    if points_field and field_name not in dataset_or_view.get_field_schema(flat=True):
        polylines_of = [()] * len(ids)  # a dataset of point surveys only
    else:
        polylines_of = labeled_polylines(dataset_or_view, field_name)
    points_of = labeled_points(dataset_or_view, points_field) if points_field else [()] * len(ids)
    report = SourceReport()
    splits: dict[str, str | None] = {}
    for sample_id, path, sample_tags in zip(ids, paths, tags, strict=True):
        try:
            splits[sample_id] = split_from_tags(sample_tags)
        except CoralsegError as err:
            raise CoralsegError(f"{path}: {err}") from None
    untagged = [i for i, split in splits.items() if split is None]
    if untagged and split_ratios:
        path_of = dict(zip(ids, paths, strict=True))
        assigned = random_split([path_of[i] for i in untagged], split_ratios, seed)
        for sample_id in untagged:
            splits[sample_id] = assigned[path_of[sample_id]]
            report.randomly_split[splits[sample_id]] += 1

    samples = []
    for sample_id, path, polylines, points in zip(ids, paths, polylines_of, points_of, strict=True):
        split = splits[sample_id]
        if split is None:
            report.without_split.append(path)
            continue
        report.polylines += len(polylines)
        report.points += len(points)
        samples.append(
            ExportSample(
                image_path=path, split=split, polylines=polylines, key=sample_id, points=points
            )
        )
    report.samples = len(samples)
    return samples, report


def check_polylines_field(dataset_or_view, field_name: str) -> None:
    """Raise a :class:`CoralsegError` unless ``field_name`` is an ``fo.Polylines`` field."""
    import fiftyone as fo

    schema = dataset_or_view.get_field_schema(flat=True)
    if field_name not in schema:
        label_fields = sorted(
            name for name, f in schema.items() if getattr(f, "document_type", None) is fo.Polylines
        )
        raise CoralsegError(
            f"the dataset has no field {field_name!r}; its polylines fields: "
            f"{', '.join(label_fields) or 'none'} (choose one with --field)"
        )
    if getattr(schema[field_name], "document_type", None) is not fo.Polylines:
        raise CoralsegError(f"field {field_name!r} does not hold fo.Polylines")


def labeled_polylines(
    dataset_or_view, field_name: str = "gt_polylines"
) -> list[tuple[LabeledPolyline, ...]]:
    """Each sample's polylines (in the view's order) as :mod:`coral_core` annotations.

    Raises:
        CoralsegError: the field is missing or not a Polylines field.
    """
    check_polylines_field(dataset_or_view, field_name)
    prefix = f"{field_name}.polylines"
    labels, points, closed = dataset_or_view.values(
        [f"{prefix}.label", f"{prefix}.points", f"{prefix}.closed"]
    )
    return [
        tuple(
            LabeledPolyline(
                label=label,
                shapes=tuple(
                    np.asarray(shape, dtype=np.float64).reshape(-1, 2) for shape in shapes
                ),
                closed=True if is_closed is None else bool(is_closed),
            )
            for label, shapes, is_closed in zip(
                sample_labels or [], sample_points or [], sample_closed or [], strict=True
            )
        )
        for sample_labels, sample_points, sample_closed in zip(labels, points, closed, strict=True)
    ]


def keypoints_fields(dataset_or_view) -> list[str]:
    """The dataset's ``fo.Keypoints`` fields."""
    import fiftyone as fo

    schema = dataset_or_view.get_field_schema()
    return sorted(
        name for name, f in schema.items() if getattr(f, "document_type", None) is fo.Keypoints
    )


def labeled_points(dataset_or_view, field_name: str) -> list[tuple[LabeledPoint, ...]]:
    """Each sample's point labels (in the view's order) from an ``fo.Keypoints`` field.

    Every point of a keypoint carries its label; FiftyOne's missing points (NaN) are left out.

    Raises:
        CoralsegError: the field is missing or not a Keypoints field.
    """
    fields = keypoints_fields(dataset_or_view)
    if field_name not in fields:
        raise CoralsegError(
            f"the dataset has no fo.Keypoints field {field_name!r}; its keypoints fields: "
            f"{', '.join(fields) or 'none'} (point labels come from 'coralseg import' of a "
            "CoralNet CSV or CPCe files)"
        )
    prefix = f"{field_name}.keypoints"
    labels, points = dataset_or_view.values([f"{prefix}.label", f"{prefix}.points"])
    out = []
    for sample_labels, sample_points in zip(labels, points, strict=True):
        found = []
        for label, xys in zip(sample_labels or [], sample_points or [], strict=True):
            for xy in xys or []:
                if xy is not None and len(xy) == 2 and np.isfinite(np.asarray(xy, float)).all():
                    found.append(LabeledPoint(label, float(xy[0]), float(xy[1])))
        out.append(tuple(found))
    return out
