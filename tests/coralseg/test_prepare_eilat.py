"""The acceptance round trip on real reef photographs (EilatMixx, ../shared/data):
dense masks -> polygons with holes -> fo.Polylines -> ``coralseg prepare`` -> masks equal to
the originals on >= 99.5% of labelled pixels.

CI uses the first few images; ``CORALSEG_EILAT_IMAGES=91`` runs the whole split.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from coral_core.labels.taxonomy import EILAT, IGNORE_INDEX
from coralseg.cli import main
from fiftyone_plugin.fiftyone_labels import semantic_mask_to_polylines

pytestmark = pytest.mark.shared_data


def test_eilat_polygons_rasterize_back_to_the_original_masks(
    shared_data: Path, fiftyone, tmp_path: Path, capsys
) -> None:
    fo = fiftyone
    count = int(os.environ.get("CORALSEG_EILAT_IMAGES", "4"))
    labels_dir = shared_data / "eilat_train" / "labels"
    label_paths = sorted(labels_dir.glob("*.png"))[:count]
    dataset = fo.Dataset(f"eilat-{uuid.uuid4().hex[:6]}")
    originals = {}
    for path in label_paths:
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        originals[path.stem] = mask
        image = shared_data / "eilat_train" / "images" / f"{path.stem}.jpg"
        dataset.add_sample(
            fo.Sample(
                filepath=str(image),
                tags=["train"],
                gt_polylines=semantic_mask_to_polylines(mask, EILAT.classes),
            )
        )
    out = tmp_path / "eilat"
    try:
        args = ["prepare", dataset.name, "--taxonomy", "eilat", "--background", "ignore"]
        assert main([*args, "--out", str(out)]) == 0
    finally:
        dataset.delete()

    agree = labelled = 0
    for stem, original in originals.items():
        written = cv2.imread(str(out / "train" / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert written.shape == original.shape
        keep = original != IGNORE_INDEX
        agree += int(np.count_nonzero(written[keep] == original[keep]))
        labelled += int(np.count_nonzero(keep))
    fraction = agree / labelled
    with capsys.disabled():
        print(f"\nEilatMixx round trip, {len(originals)} images: {fraction:.5%} of labelled pixels")
    assert fraction >= 0.995
