"""fiftyone_plugin.fiftyone_source: a dataset's polylines and point labels read in bulk as
coral_core export samples, with the split each sample goes to."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from fiftyone_plugin.fiftyone_source import (
    keypoints_fields,
    labeled_points,
    labeled_polylines,
    load_dataset,
    read_export_samples,
)


def test_load_dataset_names_the_datasets_there(reef) -> None:
    assert load_dataset(reef.name).name == reef.name
    with pytest.raises(CoralsegError, match=r"^FiftyOne has no dataset 'nope' \(datasets here: "):
        load_dataset("nope")
    with pytest.raises(CoralsegError, match=reef.name):
        load_dataset("nope")


def test_polylines_are_read_in_view_order_with_their_rings(reef, fiftyone) -> None:
    view = reef.sort_by("filepath", reverse=True)
    read = labeled_polylines(view)
    assert len(read) == len(view)
    expected = view.first().gt_polylines.polylines
    assert [p.label for p in read[0]] == [p.label for p in expected]
    np.testing.assert_array_equal(read[0][0].shapes[0], np.array(expected[0].points[0]))
    assert all(p.closed for sample in read for p in sample)


def test_samples_without_labels_open_lines_and_missing_closed_flags(reef, fiftyone) -> None:
    first, second, *_ = reef
    first.gt_polylines = None
    first.save()
    line = fiftyone.Polyline(label="Porites", points=[[[0.1, 0.1], [0.5, 0.5]]], closed=False)
    unset = fiftyone.Polyline(label="Acropora", points=[[[0.1, 0.1], [0.5, 0.1], [0.3, 0.4]]])
    second.gt_polylines = fiftyone.Polylines(polylines=[line, unset])
    second.save()
    # a polyline stored without the key (written by another tool) counts as closed
    reef._sample_collection.update_one(
        {"_id": second._id}, {"$unset": {"gt_polylines.polylines.1.closed": ""}}
    )
    assert reef.values("gt_polylines.polylines.closed")[1] == [False, None]
    read = labeled_polylines(reef)
    assert read[0] == ()
    assert [(p.label, p.closed) for p in read[1]] == [("Porites", False), ("Acropora", True)]


def test_a_missing_or_wrong_field_is_a_sentence(reef, fiftyone) -> None:
    with pytest.raises(CoralsegError) as caught:
        labeled_polylines(reef, "ground_truth")
    assert str(caught.value) == (
        "the dataset has no field 'ground_truth'; its polylines fields: gt_polylines "
        "(choose one with --field)"
    )
    with pytest.raises(CoralsegError, match=r"field 'filepath' does not hold fo\.Polylines"):
        labeled_polylines(reef, "filepath")
    with pytest.raises(CoralsegError, match="its keypoints fields: none"):
        labeled_points(reef, "gt_points")


def test_splits_from_tags_or_ratios_and_untagged_samples_reported(reef) -> None:
    reef.untag_samples(["train", "val"])
    first = reef.first()
    first.tags = ["Validation"]
    first.save()
    samples, report = read_export_samples(reef)
    assert [(s.key, s.split) for s in samples] == [(first.id, "val")]
    assert report.samples == 1 and report.polylines == 3
    assert report.without_split == reef.skip(1).values("filepath")

    ratios = {"train": 0.5, "val": 0.5}
    split, report = read_export_samples(reef, split_ratios=ratios, seed=3)
    again, _ = read_export_samples(reef, split_ratios=ratios, seed=3)
    assert [s.split for s in split] == [s.split for s in again]
    assert sum(report.randomly_split.values()) == 3 and report.without_split == []
    assert report.polylines == 12 and split[0].split == "val"

    first.tags = ["train", "test"]
    first.save()
    two_splits = rf"^{re.escape(first.filepath)}: a sample is tagged with several splits"
    with pytest.raises(CoralsegError, match=two_splits):
        read_export_samples(reef)


def test_an_empty_view_reads_nothing(reef) -> None:
    samples, report = read_export_samples(reef.limit(0), split_ratios={"train": 1.0})
    assert samples == [] and report.samples == 0 and report.without_split == []


def test_points_beside_polylines_and_point_surveys_alone(reef, fiftyone) -> None:
    first = reef.first()
    first["gt_points"] = fiftyone.Keypoints(
        keypoints=[
            fiftyone.Keypoint(label="Porites", points=[[0.25, 0.5], [math.nan, math.nan]]),
            fiftyone.Keypoint(label="Acropora", points=[[0.75, 0.125]]),
        ]
    )
    first.save()
    assert keypoints_fields(reef) == ["gt_points"]
    points = labeled_points(reef, "gt_points")
    assert [(p.label, p.x, p.y) for p in points[0]] == [
        ("Porites", 0.25, 0.5),
        ("Acropora", 0.75, 0.125),
    ]  # the missing (NaN) point is left out
    assert points[1:] == [(), (), ()]

    samples, report = read_export_samples(reef, points_field="gt_points")
    assert report.points == 2 and report.polylines == 12
    assert samples[0].points == points[0] and len(samples[0].polylines) == 3

    surveys_only, report = read_export_samples(reef, "no_polygons", points_field="gt_points")
    assert [len(s.polylines) for s in surveys_only] == [0, 0, 0, 0] and report.points == 2
