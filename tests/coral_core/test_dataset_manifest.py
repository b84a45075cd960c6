"""manifest.json of a 'coralseg prepare' folder: written and read back by one module."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import (
    DATASET_FORMAT,
    DatasetManifest,
    PointLabelCounts,
    SplitCounts,
    read_dataset_manifest,
    write_dataset_manifest,
)
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

MANIFEST = DatasetManifest(
    encoding=MaskEncoding(FAMILIES, background_is_ignore=True),
    long_side=1024,
    splits={"train": SplitCounts(3, {"Acropora": 120, "Porites": 7}), "val": SplitCounts(1, {})},
    source={"dataset": "survey", "samples_without_split": 2},
    dropped_shapes={"too small": 4},
    skipped_unknown_labels={"Isopora": 1},
)


def test_a_written_manifest_reads_back_equal(tmp_path: Path) -> None:
    path = write_dataset_manifest(tmp_path, MANIFEST)
    assert json.loads(path.read_text())["format"] == DATASET_FORMAT
    assert "point_labels" not in json.loads(path.read_text())
    assert read_dataset_manifest(tmp_path) == MANIFEST


def test_point_labels_read_back_equal(tmp_path: Path) -> None:
    with_points = dataclasses.replace(
        MANIFEST, point_labels=PointLabelCounts("superpixels", 2, {"train": 2})
    )
    path = write_dataset_manifest(tmp_path, with_points)
    assert json.loads(path.read_text())["point_labels"]["mode"] == "superpixels"
    assert read_dataset_manifest(tmp_path) == with_points


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(format="coralseg-mmseg-dataset/2"),
            "is not a 'coralseg-mmseg-dataset/1' file",
        ),
        (lambda d: d.pop("encoding"), "lacks the fields encoding"),
        (lambda d: d.update(labels=[]), r"does not define: \['labels'\]"),
        (lambda d: d.update(long_side="1024"), "long_side must be an integer"),
        (lambda d: d["splits"].update(train={"samples": -1, "pixels": {}}), "a count"),
        (lambda d: d["splits"].update(holdout={"samples": 1, "pixels": {}}), "splits must be"),
        (
            lambda d: d.update(point_labels={"mode": "dense", "radius": 2, "samples": {}}),
            "point_labels.mode must be",
        ),
    ],
)
def test_anything_else_is_refused_with_a_sentence(tmp_path: Path, change, message) -> None:
    data = MANIFEST.to_dict()
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(CoralsegError, match=message) as caught:
        read_dataset_manifest(tmp_path)
    assert "prepare the data folder again" in str(caught.value)


def test_a_missing_or_broken_file_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(CoralsegError, match=r"not a prepared data folder \(no manifest.json\)"):
        read_dataset_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CoralsegError, match="cannot read"):
        read_dataset_manifest(tmp_path)
