"""``coralseg prepare`` end to end: a real FiftyOne dataset -> an MMSeg folder MMSeg loads."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from coral_core.labels.taxonomy import FAMILIES
from coralseg.cli import main

W, H = 40, 20


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0 / W, y0 / H], [x1 / W, y0 / H], [x1 / W, y1 / H], [x0 / W, y1 / H]]


def _image(path: Path, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return str(path)


@pytest.fixture
def quadrats(fiftyone, tmp_path: Path):
    """Four small quadrats: one per split, one without a split tag."""
    fo = fiftyone
    dataset = fo.Dataset(f"quadrats-{uuid.uuid4().hex[:6]}")

    def polylines(*items: tuple[str, list]) -> fo.Polylines:
        return fo.Polylines(
            polylines=[
                fo.Polyline(label=label, points=shapes, closed=True, filled=True)
                for label, shapes in items
            ]
        )

    dataset.add_samples(
        [
            fo.Sample(
                filepath=_image(tmp_path / "q1.jpg", 1),
                tags=["train"],
                gt_polylines=polylines(
                    ("Acropora", [_rect(0, 0, 20, 20)]),
                    ("Atrea", [_rect(5, 5, 10, 10)]),  # smaller: on top; maps to Group1
                    ("Porites", [_rect(24, 0, 40, 20), _rect(28, 4, 36, 16)]),  # with a hole
                ),
            ),
            fo.Sample(
                filepath=_image(tmp_path / "q2.jpg", 2),
                tags=["validation"],
                gt_polylines=polylines(("Montipora", [_rect(-5, -5, 10, 10)])),  # clipped
            ),
            fo.Sample(filepath=_image(tmp_path / "q3.jpg", 3), tags=["test", "reviewed"]),
            fo.Sample(
                filepath=_image(tmp_path / "q4.jpg", 4),
                gt_polylines=polylines(("Acropora", [_rect(0, 0, 4, 4)])),
            ),
        ]
    )
    yield dataset
    dataset.delete()


def _read_label(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_prepare_writes_exact_masks_and_the_mmseg_layout(quadrats, tmp_path: Path, capsys) -> None:
    out = tmp_path / "families"
    code = main(
        ["prepare", quadrats.name, "--taxonomy", "families", "--out", str(out), "--workers", "1"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 sample(s) have no train/val/test tag" in printed

    value = {name: 1 + FAMILIES.classes.index(name) for name in FAMILIES.classes}
    expected = np.zeros((H, W), np.uint8)
    expected[0:20, 0:20] = value["Acropora"]
    expected[5:10, 5:10] = value["Group1"]
    expected[0:20, 24:40] = value["Porites"]
    expected[4:16, 28:36] = 0
    np.testing.assert_array_equal(_read_label(out / "train/labels/q1.png"), expected)

    clipped = np.zeros((H, W), np.uint8)
    clipped[0:10, 0:10] = value["Montipora"]
    np.testing.assert_array_equal(_read_label(out / "val/labels/q2.png"), clipped)
    np.testing.assert_array_equal(_read_label(out / "test/labels/q3.png"), np.zeros((H, W)))

    # images are copied byte for byte when nothing needs re-encoding
    assert (out / "train/data/q1.jpg").read_bytes() == (tmp_path / "q1.jpg").read_bytes()
    assert not (out / "train/data/q4.jpg").exists()

    assert (out / "classes.txt").read_text().splitlines() == ["background", *FAMILIES.classes]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["samples"] == 1
    assert manifest["splits"]["train"]["pixels"]["Group1"] == 25
    assert manifest["splits"]["train"]["pixels"]["Porites"] == 16 * 20 - 8 * 12
    assert manifest["source"]["samples_without_split"] == 1
    assert manifest["encoding"]["taxonomy"]["name"] == "families"
    assert not list(tmp_path.glob(".families.*")), "staging folder left behind"


def test_written_dataset_loads_with_mmseg_pipeline(quadrats, tmp_path: Path) -> None:
    from mmengine.config import Config
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules

    out = tmp_path / "ds"
    assert main(["prepare", quadrats.name, "--taxonomy", "families", "--out", str(out)]) == 0
    register_all_modules()
    info = Config.fromfile(str(out / "dataset_info.py"))
    assert info.num_classes == 8
    dataset = DATASETS.build(
        dict(
            **info.dataset_common,
            data_prefix=info.train_prefix,
            pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")],
        )
    )
    assert len(dataset) == 1
    item = dataset[0]
    np.testing.assert_array_equal(item["gt_seg_map"], _read_label(out / "train/labels/q1.png"))
    assert item["img"].shape == (H, W, 3)
    assert dataset.metainfo["classes"] == ("background", *FAMILIES.classes)


def test_background_as_ignore_and_resize(quadrats, tmp_path: Path) -> None:
    out = tmp_path / "ign"
    args = ["prepare", quadrats.name, "--taxonomy", "families", "--out", str(out)]
    assert main([*args, "--background", "ignore", "--size", "80", "--workers", "1"]) == 0
    label = _read_label(out / "train/labels/q1.png")
    assert label.shape == (2 * H, 2 * W)
    assert label[0, 0] == FAMILIES.classes.index("Acropora")  # classes start at 0
    assert label[2 * 10, 2 * 30] == 255  # the hole is background, i.e. ignored
    assert Image.open(out / "train/data/q1.jpg").size == (2 * W, 2 * H)
    # recorded, so that inference shrinks photos the same way (coral_core.inference.scaling)
    assert json.loads((out / "manifest.json").read_text())["long_side"] == 80


def test_random_split_for_untagged_samples_is_reproducible(quadrats, tmp_path: Path) -> None:
    layouts = []
    for run in range(2):
        out = tmp_path / f"split{run}"
        args = ["prepare", quadrats.name, "--out", str(out), "--taxonomy", "families"]
        assert main([*args, "--split", "0,1", "--seed", "3"]) == 0
        layouts.append(sorted(str(p.relative_to(out)) for p in out.rglob("*.png")))
    assert layouts[0] == layouts[1]
    assert "val/labels/q4.png" in layouts[0]


def test_existing_output_is_kept_without_overwrite(quadrats, tmp_path: Path, capsys) -> None:
    out = tmp_path / "kept"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    assert main(["prepare", quadrats.name, "--taxonomy", "families", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "mine"
    assert (
        main(["prepare", quadrats.name, "--taxonomy", "families", "--out", str(out), "--overwrite"])
        == 0
    )
    assert not (out / "precious.txt").exists()
    assert (out / "manifest.json").exists()


def test_unknown_labels_stop_the_export_and_are_listed(quadrats, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eilat"
    assert main(["prepare", quadrats.name, "--taxonomy", "eilat", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "labels not in taxonomy 'eilat'" in err
    assert "'Atrea' (1)" in err and "'Montipora' (1)" in err and "--label-map" in err
    assert not out.exists()


def test_label_map_and_skip_unknown(quadrats, tmp_path: Path) -> None:
    out = tmp_path / "mapped"
    args = ["prepare", quadrats.name, "--taxonomy", "eilat", "--out", str(out), "--workers", "1"]
    maps = ["--label-map", "Atrea=Faviidae", "--label-map", "Porites=Other Hard Coral"]
    assert main([*args, *maps, "--skip-unknown"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_unknown_labels"] == {"Montipora": 1}
    assert manifest["splits"]["train"]["pixels"]["Faviidae"] == 25


def test_failure_leaves_nothing_behind(quadrats, tmp_path: Path, capsys) -> None:
    (tmp_path / "q2.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "broken"
    assert main(["prepare", quadrats.name, "--taxonomy", "families", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 image(s) could not be exported; nothing was written" in err
    assert "q2.jpg: cannot read image" in err
    assert not out.exists()
    assert not list(tmp_path.glob(".broken.*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--field", "predictions"], "no field 'predictions'; its polylines fields: gt_polylines"),
        (["--taxonomy", "genera"], "unknown taxonomy 'genera'"),
        (["--split", "a,b"], "split ratios 'a,b' must be numbers"),
    ],
)
def test_option_errors(quadrats, tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    assert main(["prepare", quadrats.name, "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_lists_existing(quadrats, capsys) -> None:
    assert main(["prepare", "no-such-dataset"]) == 2
    err = capsys.readouterr().err
    assert "FiftyOne has no dataset 'no-such-dataset'" in err and quadrats.name in err


def test_options_from_dotenv_and_flags_win(quadrats, tmp_path: Path, monkeypatch) -> None:
    from coralseg import env

    monkeypatch.chdir(tmp_path)
    env._dotenv.cache_clear()
    (tmp_path / ".env").write_text(
        f"CORALSEG_DATASET={quadrats.name}\nCORALSEG_TAXONOMY=agnostic\nCORALSEG_OUT=fromenv\n"
    )
    try:
        assert main(["prepare", "--workers", "1", "--taxonomy", "families"]) == 0
    finally:
        env._dotenv.cache_clear()
    manifest = json.loads((tmp_path / "fromenv" / "manifest.json").read_text())
    assert manifest["encoding"]["taxonomy"]["name"] == "families"
