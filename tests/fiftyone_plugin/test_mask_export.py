"""fiftyone_plugin.mask_export: a dataset, view or selection written as an MMSeg folder, with
what was read from FiftyOne in its manifest and report lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import read_dataset_manifest
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from fiftyone_plugin.mask_export import export_masks
from tests.fiftyone_plugin.conftest import SIZE


def test_a_view_is_written_with_its_source_in_the_manifest(reef, tmp_path: Path) -> None:
    reef.limit(1).untag_samples(["train", "val"])  # quadrat_0, tagged train
    out = tmp_path / "prepared"
    exported = export_masks(reef, out, FAMILIES, workers=1)

    assert dict(exported.summary.samples) == {"train": 1, "val": 2}
    labels = sorted((out / "train" / "labels").glob("*.png")) + sorted(
        (out / "val" / "labels").glob("*.png")
    )
    assert len(labels) == 3
    encoding = MaskEncoding(FAMILIES)
    mask = np.asarray(Image.open(labels[0]))
    assert mask.shape == (SIZE, SIZE) and set(np.unique(mask)) > {0}
    assert set(np.unique(mask)) <= set(range(encoding.num_labels))
    manifest = read_dataset_manifest(out)
    assert manifest.source == {
        "fiftyone_dataset": reef.name,
        "field": "gt_polylines",
        "samples_without_split": 1,
        "randomly_split": {},
    }
    assert manifest.encoding == encoding
    lines = exported.lines()
    assert lines[0].startswith(f"wrote {out} in ")
    assert lines[-1] == (
        "  1 sample(s) without a train/val/test tag left out (tag them, or give split ratios)"
    )


def test_untagged_samples_split_by_ratio_and_unknown_labels_skipped(
    reef, fiftyone, tmp_path: Path
) -> None:
    reef.untag_samples(["train", "val"])
    first = reef.first()
    first.gt_polylines.polylines.append(
        fiftyone.Polyline(label="Seagrass", points=[[[0, 0], [0.2, 0], [0.1, 0.2]]], closed=True)
    )
    first.save()
    out = tmp_path / "prepared"
    with pytest.raises(CoralsegError, match=r"labels not in taxonomy 'families': 'Seagrass' \(1\)"):
        export_masks(reef, out, FAMILIES, split_ratios={"train": 0.5, "val": 0.5}, workers=1)
    assert not out.exists()

    exported = export_masks(
        reef, out, FAMILIES, split_ratios={"train": 0.5, "val": 0.5}, skip_unknown=True, workers=1
    )
    assert dict(exported.summary.samples) == {"train": 2, "val": 2}
    assert "  skipped unknown labels: Seagrass (1)" in exported.lines()
    assert read_dataset_manifest(out).source["randomly_split"] == {"train": 2, "val": 2}


def test_a_rerun_keeps_the_folder_unless_told_to_overwrite(reef, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    export_masks(reef.match_tags("train"), out, FAMILIES, workers=1)
    with pytest.raises(CoralsegError, match="already exists; choose another output folder"):
        export_masks(reef, out, FAMILIES, workers=1)
    assert len(list((out / "train" / "data").iterdir())) == 2
    assert not (out / "val").exists()
    export_masks(reef, out, FAMILIES, overwrite=True, workers=1)
    assert len(list((out / "val" / "data").iterdir())) == 2


def test_nothing_to_export_is_a_sentence(reef, tmp_path: Path) -> None:
    reef.untag_samples(["train", "val"])
    with pytest.raises(CoralsegError, match=r"no sample has a split tag .* give split ratios"):
        export_masks(reef, tmp_path / "a", FAMILIES)
    with pytest.raises(CoralsegError, match="no samples to export: the dataset or view is empty"):
        export_masks(reef.limit(0), tmp_path / "b", FAMILIES, split_ratios={"train": 1.0})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
