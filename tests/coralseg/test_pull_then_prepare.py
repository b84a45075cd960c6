"""CVAT -> FiftyOne -> MMSeg masks, end to end: `coralseg pull-cvat` against the fake CVAT
server (real cvat-sdk), then `coralseg prepare`, then an edit in CVAT, a re-pull and a
fresh prepare that reflects it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from coral_core.labels.taxonomy import FINEGRAINED
from coralseg.cli import main
from tests.fake_cvat import FakeCvatServer, encode_mask, make_frame

W, H = 60, 40


@pytest.fixture
def cvat_env(fake_cvat: FakeCvatServer, monkeypatch: pytest.MonkeyPatch) -> FakeCvatServer:
    monkeypatch.setenv("FIFTYONE_CVAT_URL", fake_cvat.url)
    monkeypatch.setenv("FIFTYONE_CVAT_USERNAME", "alice")
    monkeypatch.setenv("FIFTYONE_CVAT_PASSWORD", "secret")
    monkeypatch.delenv("CVAT_ACCESS_TOKEN", raising=False)
    return fake_cvat


def _label(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_pull_then_prepare_then_incremental_update(fiftyone, cvat_env, tmp_path) -> None:
    state = cvat_env.state
    project = state.add_project("moorea-2025", ["Acropora", "Porites", "Pocillopora"])
    train = state.add_task(
        project, "t1", [make_frame("q1.jpg", W, H)], subset="train", completed=True
    )
    state.add_shape(train, 0, "Acropora", "polygon", [0, 0, 30, 0, 30, 20, 0, 20])
    state.add_shape(train, 0, "Porites", "polygon", [10, 5, 20, 5, 20, 15, 10, 15])
    colony = np.zeros((H, W), bool)
    colony[25:35, 40:55] = True
    colony[28:31, 45:50] = False  # a hole
    state.add_shape(train, 0, "Pocillopora", "mask", encode_mask(colony))
    val = state.add_task(
        project, "v1", [make_frame("q2.jpg", W, H)], subset="Validation", completed=True
    )
    state.add_shape(val, 0, "Porites", "polygon", [0, 0, 60, 0, 60, 40, 0, 40])

    name = "moorea-e2e"
    pull = ["pull-cvat", "moorea-2025", "--dataset", name, "--media-dir", str(tmp_path / "media")]
    try:
        assert main(pull) == 0
        out = tmp_path / "out"
        prepare = [
            "prepare",
            name,
            "--taxonomy",
            "finegrained",
            "--out",
            str(out),
            "--workers",
            "1",
        ]
        assert main(prepare) == 0

        value = {n: 1 + FINEGRAINED.classes.index(n) for n in FINEGRAINED.classes}
        expected = np.zeros((H, W), np.uint8)
        expected[0:20, 0:30] = value["Acropora"]
        expected[5:15, 10:20] = value["Porites"]  # smaller, on top
        expected[colony] = value["Pocillopora"]
        np.testing.assert_array_equal(_label(out / "train/labels/q1.png"), expected)
        assert (_label(out / "val/labels/q2.png") == value["Porites"]).all()

        # an annotator deletes the Porites colony in CVAT; the re-pull picks the change up
        state.edit_shapes(train, remove=[train.shapes[1].id])
        assert main(pull) == 0
        assert main([*prepare, "--overwrite"]) == 0
        expected[5:15, 10:20] = value["Acropora"]
        np.testing.assert_array_equal(_label(out / "train/labels/q1.png"), expected)
        assert fiftyone.load_dataset(name).count() == 2
    finally:
        if fiftyone.dataset_exists(name):
            fiftyone.delete_dataset(name)
