"""fiftyone_plugin.masks: label PNGs named after sample ids, and what a mask field's pixel
values mean (mask targets, App colours, the whole encoding in ``dataset.info``)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from coral_core.labels.palette import to_hex
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from fiftyone_plugin.masks import (
    INFO_KEY,
    default_mask_root,
    field_encoding,
    mask_targets,
    read_mask,
    set_segmentation_targets,
    write_mask,
)


def test_a_mask_round_trips_and_a_refused_one_keeps_the_old_file(tmp_path: Path) -> None:
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = write_mask(tmp_path / "pred", "abc123", mask)
    assert path == str(tmp_path / "pred" / "abc123.png")
    np.testing.assert_array_equal(read_mask(path), mask)

    with pytest.raises(ValueError, match=r"expected an \(H, W\) uint8 mask, got \(3, 4, 1\)"):
        write_mask(tmp_path / "pred", "abc123", mask[..., None])
    with pytest.raises(ValueError, match="int64"):
        write_mask(tmp_path / "pred", "abc123", mask.astype(np.int64))
    np.testing.assert_array_equal(read_mask(path), mask)
    assert [p.name for p in (tmp_path / "pred").iterdir()] == ["abc123.png"]


def test_targets_name_every_label_value() -> None:
    with_background = mask_targets(MaskEncoding(FAMILIES))
    assert with_background[0] == "background"
    assert list(with_background.values())[1:] == list(FAMILIES.classes)
    ignoring = mask_targets(MaskEncoding(FAMILIES, background_is_ignore=True))
    assert ignoring == dict(enumerate(FAMILIES.classes))


def test_default_root_is_a_safe_folder_per_dataset(fiftyone) -> None:
    dataset = fiftyone.Dataset(f"..site 1/reef {uuid.uuid4().hex[:6]}")
    try:
        root = default_mask_root(dataset)
        assert root.parent.parent == Path(fiftyone.config.default_dataset_dir) / "coralseg"
        assert root.name == "masks"
        assert "/" not in root.parent.name and " " not in root.parent.name
        assert not root.parent.name.startswith(".")
    finally:
        dataset.delete()


def test_targets_colours_and_encoding_are_recorded_and_rerun_cleanly(fiftyone) -> None:
    dataset = fiftyone.Dataset()
    try:
        other = {"path": "ground_truth", "colorByAttribute": "label"}
        dataset.app_config.color_scheme = fiftyone.ColorScheme(fields=[other])
        dataset.info["unrelated"] = 1
        dataset.save()
        encoding = MaskEncoding(FAMILIES)
        set_segmentation_targets(dataset, ["pred", "gt"], encoding)
        ignoring = MaskEncoding(FAMILIES, background_is_ignore=True)
        set_segmentation_targets(dataset, ["pred"], ignoring)  # a rerun with another model

        dataset.reload()
        assert dataset.mask_targets["gt"] == mask_targets(encoding)
        assert dataset.mask_targets["pred"] == mask_targets(ignoring)
        fields = dataset.app_config.color_scheme.fields
        assert [f["path"] for f in fields] == ["ground_truth", "gt", "pred"]
        pred_colors = next(f for f in fields if f["path"] == "pred")["maskTargetsColors"]
        assert pred_colors[0] == {"intTarget": 0, "color": to_hex(ignoring.palette[0])}
        assert len(pred_colors) == ignoring.num_labels
        assert field_encoding(dataset, "pred") == ignoring
        assert field_encoding(dataset, "gt") == encoding
        assert field_encoding(dataset, "never_written") is None
        assert set(dataset.info[INFO_KEY]["encodings"]) == {"pred", "gt"}
        assert dataset.info["unrelated"] == 1
    finally:
        dataset.delete()
