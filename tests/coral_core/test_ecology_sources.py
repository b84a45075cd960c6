"""Mask sources: the three folder kinds, each file read through the module that writes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.ecology.sources import item_instances, item_photo, locate_masks
from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import DatasetManifest, write_dataset_manifest
from coral_core.inference.instance_records import InstanceRecord, write_instance_record
from coral_core.inference.instances import CoralInstance
from coral_core.labels.taxonomy import (
    FAMILIES,
    MaskEncoding,
    write_class_files,
    write_encoding_file,
)

FAM = MaskEncoding(FAMILIES)


def _mask() -> np.ndarray:
    mask = np.zeros((10, 16), dtype=np.uint8)
    mask[2:6, 3:9] = FAM.value_of("Acropora")
    return mask


def test_a_plain_folder_with_classes_txt_and_nested_masks(tmp_path: Path) -> None:
    (tmp_path / "site" / "a").mkdir(parents=True)
    Image.fromarray(_mask()).save(tmp_path / "site" / "a" / "q1.png")
    write_class_files(FAM, tmp_path / "site")
    source = locate_masks(tmp_path / "site")
    assert source.kind == "masks" and [i.name for i in source.items] == ["a__q1"]
    assert source.encoding.label_names == FAM.label_names
    assert "label masks, 1 image(s)" in source.describe()


def test_a_prepare_folder_gives_each_image_its_split(tmp_path: Path) -> None:
    for split in ("train", "val"):
        (tmp_path / split / "labels").mkdir(parents=True)
        Image.fromarray(_mask()).save(tmp_path / split / "labels" / f"{split}_q.png")
    write_dataset_manifest(tmp_path, DatasetManifest(FAM, long_side=None, splits={}))
    source = locate_masks(tmp_path)
    assert source.kind == "prepare"
    assert {i.name: i.fields["split"] for i in source.items} == {"train_q": "train", "val_q": "val"}


def test_an_infer_output_gives_the_recorded_colonies_and_photo(tmp_path: Path) -> None:
    (tmp_path / "semantic").mkdir()
    (tmp_path / "instances").mkdir()
    Image.fromarray(_mask()).save(tmp_path / "semantic" / "q.png")
    photo = tmp_path / "q.jpg"
    Image.new("RGB", (16, 10)).save(photo)
    box = np.ones((4, 6), dtype=bool)
    colony = CoralInstance("Acropora", FAM.value_of("Acropora"), 0.9, (3, 2, 6, 4), box, 24)
    write_instance_record(
        tmp_path / "instances" / "q.json", InstanceRecord(str(photo), 16, 10, (colony,))
    )
    write_encoding_file(FAM, tmp_path)
    source = locate_masks(tmp_path)
    (item,) = source.items
    assert source.kind == "infer" and item.record == tmp_path / "instances" / "q.json"
    (read,) = item_instances(item)
    assert (read.label, read.value, read.bbox, read.area) == (
        "Acropora",
        FAM.value_of("Acropora"),
        (3, 2, 6, 4),
        24,
    )
    assert np.array_equal(read.mask, box)
    assert item_photo(item) == photo


def test_a_folder_without_masks_is_told_so_before_any_question_of_classes(tmp_path) -> None:
    (tmp_path / "photos").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photos" / "q.jpg")
    for folder in (tmp_path / "photos", tmp_path / "photos" / "nothing"):
        folder.mkdir(exist_ok=True)
        with pytest.raises(CoralsegError, match=r"no label masks \(\.png, \.tif, \.tiff\)"):
            locate_masks(folder)


def test_the_meaning_of_the_values_is_required_and_must_agree(tmp_path: Path) -> None:
    Image.fromarray(_mask()).save(tmp_path / "q.png")
    with pytest.raises(CoralsegError, match="say what the values") as raised:
        locate_masks(tmp_path)
    assert raised.value.settings == ("taxonomy", "background", "classes_file")
    write_class_files(FAM, tmp_path)
    with pytest.raises(CoralsegError) as raised:
        locate_masks(tmp_path, taxonomy="families", classes_file=tmp_path / "classes.txt")
    assert raised.value.settings == ("taxonomy", "classes_file")
    write_dataset_manifest(tmp_path, DatasetManifest(FAM, long_side=None, splits={}))
    with pytest.raises(CoralsegError, match="leave the taxonomy out"):
        locate_masks(tmp_path, taxonomy="eilat")
    with pytest.raises(CoralsegError, match="is not a folder"):
        locate_masks(tmp_path / "missing")
