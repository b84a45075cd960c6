"""instances/<image>.json of 'coralseg infer': written and read back by one module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.formats.rle import mask_to_coco_rle
from coral_core.inference.instance_records import (
    InstanceRecord,
    read_instance_record,
    write_instance_record,
)
from coral_core.inference.instances import CoralInstance


def _instance(seed: int) -> CoralInstance:
    rng = np.random.default_rng(seed)
    mask = rng.random((7, 11)) > 0.4
    return CoralInstance("Acropora", 2, 0.25 * seed, (3 * seed, 5, 11, 7), mask, int(mask.sum()))


def test_a_written_record_reads_back_the_same_colonies(tmp_path: Path) -> None:
    record = InstanceRecord("photos/q1.jpg", 64, 48, (_instance(1), _instance(2)), tiled=True)
    write_instance_record(tmp_path / "q1.json", record)
    back = read_instance_record(tmp_path / "q1.json")
    assert (back.file_name, back.width, back.height, back.tiled) == ("photos/q1.jpg", 64, 48, True)
    assert len(back.instances) == 2
    for original, read in zip(record.instances, back.instances, strict=True):
        assert (read.label, read.value, read.score, read.bbox, read.area) == (
            original.label,
            original.value,
            original.score,
            original.bbox,
            original.area,
        )
        np.testing.assert_array_equal(read.mask, original.mask)
    write_instance_record(tmp_path / "plain.json", InstanceRecord("a.jpg", 5, 5, ()))
    assert read_instance_record(tmp_path / "plain.json").tiled is False


def _record_json(**instance_changes) -> dict:
    mask = np.ones((2, 3), dtype=bool)
    instance = {"label": "Acropora", "value": 2, "score": 0.5, "bbox": [1, 1, 3, 2], "area": 6}
    instance |= {"box_rle": mask_to_coco_rle(mask)} | instance_changes
    return {"file_name": "a.jpg", "width": 8, "height": 8, "instances": [instance]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # other tools' spellings of a mask are not this format
        ({**_record_json(), "instances": [{"label": "A", "segmentation": {}}]}, "malformed"),
        (_record_json(mask_rle={"size": [2, 3], "counts": "6"}), "expected the fields"),
        (_record_json(bbox=[1, 1, 4, 2]), "box_rle is"),
        (_record_json(score=1.5), "score must be"),
        ({"file_name": "a.jpg", "instances": []}, "is not an instance record"),
        ({**_record_json(), "annotations": []}, "does not define"),
    ],
)
def test_anything_else_is_refused_with_a_sentence(tmp_path: Path, data, message) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CoralsegError, match=message):
        read_instance_record(path)
