"""Point labels end to end on a real FiftyOne database: a CoralNet CSV (and a CVAT XML for
the same photos) -> ``coralseg import`` -> Keypoints beside polylines -> ``coralseg prepare``
-> sparse and superpixel masks; then mixed training (polygons and points) with the
point-label loss for a few real iterations."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from coral_core.formats.annotations import AnnotatedImage, AnnotationShape, to_cvat_xml
from coral_core.formats.polygons import Polygon
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from coralseg.cli import main

WIDTH, HEIGHT = 48, 32
VALUES = {name: MaskEncoding(FAMILIES).value_of(name) for name in FAMILIES.classes}
REPO = Path(__file__).resolve().parents[2]
POINTS_CONFIG = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-points-224x224.py"


def _photos(folder: Path) -> None:
    """Sand with a blue colony in the right half (what the superpixels should find)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem in ("q1", "q2", "q3"):
        pixels = np.full((HEIGHT, WIDTH, 3), (190, 170, 120), np.float64)
        pixels[:, WIDTH // 2 :] = (40, 60, 200)
        pixels += rng.normal(0, 4, pixels.shape)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            folder / f"{stem}.jpg", quality=98
        )


def _coralnet_csv(path: Path) -> None:
    rows = [
        # Name, Date, Aux1, Row, Column, Label, Machine suggestion 1
        ("q1.jpg", "2024-03-01", "North", 5, 30, "Porit", "Porit"),
        ("q2.jpg", "2024-03-02", "South", 4, 6, "Sand", "Sand"),
        ("q2.jpg", "2024-03-02", "South", 20, 40, "Porit", "ACR"),
        ("q2.jpg", "2024-03-02", "South", 25, 8, "Sand", "Sand"),
        ("q3.jpg", "2024-03-03", "South", 10, 36, "Porit", "Porit"),
    ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Name", "Date", "Aux1", "Row", "Column", "Label", "Machine suggestion 1"])
        writer.writerows(rows)


def _labels(out: Path, split: str, stem: str) -> np.ndarray:
    return cv2.imread(str(out / split / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)


def test_coralnet_points_import_beside_polygons_and_prepare(
    fiftyone, tmp_path: Path, capsys
) -> None:
    fo = fiftyone
    images = tmp_path / "images"
    _photos(images)
    points_csv = tmp_path / "annotations.csv"
    _coralnet_csv(points_csv)
    colony = Polygon([[2, 2], [12, 2], [12, 10], [2, 10]])
    xml = tmp_path / "annotations.xml"
    xml.write_text(
        to_cvat_xml(
            [
                AnnotatedImage(
                    "q1.jpg",
                    WIDTH,
                    HEIGHT,
                    (AnnotationShape("Acropora", "polygon", polygons=(colony,)),),
                    subset="Train",
                )
            ]
        )
    )
    codes = tmp_path / "codes.csv"
    codes.write_text("code,class\nPorit,Porites\nSand,background\n")
    name = f"points-{uuid.uuid4().hex[:8]}"
    base = ["import", str(xml), str(points_csv), "--images", str(images), "--dataset", name]
    base += ["--taxonomy", "families", "--subset", "train"]

    before = set(fo.list_datasets())
    assert main(base) == 2  # 'Sand' is no class of families, 'Porit' no label
    err = capsys.readouterr().err
    assert "2 label codes of" in err and "'Porit' (3), 'Sand' (2)" in err
    assert "--label-codes" in err and set(fo.list_datasets()) == before

    assert main([*base, "--label-codes", str(codes)]) == 0
    printed = capsys.readouterr().out
    assert "points: Porites 3, background 2" in printed
    dataset = fo.load_dataset(name)
    assert len(dataset) == 3
    q1 = dataset.match({"filepath": {"$regex": "q1.jpg$"}}).first()
    q2 = dataset.match({"filepath": {"$regex": "q2.jpg$"}}).first()
    assert [p.label for p in q1.gt_polylines.polylines] == ["Acropora"]
    assert [k.label for k in q1.gt_points.keypoints] == ["Porites"]
    np.testing.assert_allclose(q1.gt_points.keypoints[0].points, [[30.5 / WIDTH, 5.5 / HEIGHT]])
    assert q1.gt_points.keypoints[0].label_code == "Porit"
    assert q2.gt_polylines is None and len(q2.gt_points.keypoints) == 3
    assert q2.point_metadata == {"Date": "2024-03-02", "Aux1": "South"}
    assert q2.gt_points.keypoints[1].machine_suggestion_1 == "ACR"

    # CPCe: positions in CPCe units (here 15 to a pixel), scaled to the photo at import.
    cpc = tmp_path / "q3.cpc"
    cpc_lines = [
        f'"C:\\codes.txt","D:\\survey\\q3.jpg",{WIDTH * 15},{HEIGHT * 15},{WIDTH},{HEIGHT}',
        *["0,0"] * 4,
        "1",
        f"{30 * 15},{12 * 15}",
        '"1","Porit","Notes",""',
    ]
    cpc.write_text("\r\n".join(cpc_lines) + "\r\n")
    cpce_name = f"{name}-cpce"
    cpce_args = ["import", str(cpc), "--images", str(images), "--dataset", cpce_name]
    assert main([*cpce_args, "--label-codes", str(codes), "--subset", "val"]) == 0
    (keypoint,) = fo.load_dataset(cpce_name).first().gt_points.keypoints
    assert keypoint.label == "Porites" and keypoint.label_code == "Porit"
    np.testing.assert_allclose(keypoint.points, [[30 / WIDTH, 12 / HEIGHT]])
    capsys.readouterr()

    sparse = tmp_path / "sparse"
    args = ["prepare", name, "--taxonomy", "families", "--workers", "1"]
    assert main([*args, "--point-radius", "0", "--out", str(sparse)]) == 0
    assert "point labels: train with the point-label loss" in capsys.readouterr().out
    manifest = json.loads((sparse / "manifest.json").read_text())
    assert manifest["point_labels"]["mode"] == "sparse"
    masks = {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sparse.rglob("*.png")}
    # q1: its polygon's dense mask (background 0 elsewhere) with the point drawn on top.
    expected_q1 = np.zeros((HEIGHT, WIDTH), np.uint8)
    expected_q1[2:10, 2:12] = VALUES["Acropora"]
    expected_q1[5, 30] = VALUES["Porites"]
    np.testing.assert_array_equal(masks["q1"], expected_q1)
    # q2: labelled by points only: 255 except the three points.
    expected_q2 = np.full((HEIGHT, WIDTH), 255, np.uint8)
    expected_q2[4, 6] = expected_q2[25, 8] = 0
    expected_q2[20, 40] = VALUES["Porites"]
    np.testing.assert_array_equal(masks["q2"], expected_q2)

    spread = tmp_path / "superpixels"
    assert main([*args, "--points", "superpixels", "--out", str(spread)]) == 0
    q2_spread = next(cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in spread.rglob("q2.png"))
    labelled = q2_spread != 255
    # The 3 points (discs of 13 pixels at the default radius) spread over whole regions.
    assert labelled.sum() > 5 * 3 * 13
    truth = np.where(np.arange(WIDTH) < WIDTH // 2, 0, VALUES["Porites"])[None].repeat(
        HEIGHT, axis=0
    )
    assert (q2_spread[labelled] == truth[labelled]).mean() > 0.9


@pytest.mark.slow
def test_mixed_training_from_polygons_and_points(tmp_path: Path) -> None:
    """Photos with polygons and photos with points only, in one run of real MMSeg steps
    through ``coralseg train`` (slow: about a minute on 2 shared cores)."""
    from coral_core.labels.point_labels import LabeledPoint
    from coral_core.labels.rasterize import LabeledPolyline
    from coral_core.training.mmseg_export import ExportSample, PointMasks, export_mmseg_dataset

    images = tmp_path / "images"
    _photos(images)
    half = np.array([[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]])
    dense = (LabeledPolyline("Porites", (half,)),)
    points = (
        LabeledPoint("Porites", 0.8, 0.5),
        LabeledPoint("background", 0.2, 0.5),
        LabeledPoint("Porites", 0.7, 0.2),
    )
    samples = [
        ExportSample(str(images / "q1.jpg"), "train", dense),
        ExportSample(str(images / "q2.jpg"), "train", (), points=points),
        ExportSample(str(images / "q3.jpg"), "val", dense),
    ]
    data = tmp_path / "mixed"
    summary = export_mmseg_dataset(
        samples, data, MaskEncoding(FAMILIES), workers=1, progress=False, points=PointMasks()
    )
    assert summary.point_samples["train"] == 1
    work = tmp_path / "work"
    options = [
        "train_dataloader.num_workers=0",
        "val_dataloader.num_workers=0",
        "test_dataloader.num_workers=0",
        "train_dataloader.batch_size=2",
        "default_hooks.logger.interval=1",
        "train_cfg.max_iters=2",
        # Training steps only: validation and checkpoints are tested elsewhere (test_train).
        "train_cfg.val_interval=100",
        "default_hooks.checkpoint.interval=100",
        "default_hooks.checkpoint.save_last=False",
        "param_scheduler.0.end=2",
    ]
    command = ["train", str(POINTS_CONFIG), "--work-dir", str(work), "--data", str(data)]
    assert main([*command, "--cfg-options", *options]) == 0
    records = [
        json.loads(line)
        for path in work.glob("*/vis_data/scalars.json")
        for line in path.read_text().splitlines()
    ]
    losses = [r["decode.loss_point_ce"] for r in records if "decode.loss_point_ce" in r]
    assert len(losses) == 2 and all(np.isfinite(losses)) and min(losses) > 0


def test_cover_point_survey_writes_estimates_with_their_error(tmp_path: Path, capsys) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = np.zeros((60, 80), np.uint8)
    mask[10:40, 10:50] = VALUES["Acropora"]  # 1200 of 4800 pixels: 25 %
    Image.fromarray(mask).save(masks / "q1.png")
    out = tmp_path / "cover"
    args = ["cover", str(masks), "--taxonomy", "families", "--out", str(out), "--no-colonies"]
    assert main([*args, "--point-survey", "25", "400", "--survey-draws", "100"]) == 0
    assert "point_survey.csv" in capsys.readouterr().out
    with (out / "point_survey.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["class"] == "Acropora"]
    assert [int(r["points"]) for r in rows] == [25, 400]
    assert {float(r["dense_cover"]) for r in rows} == {25.0}
    few, many = (float(r["point_se"]) for r in rows)
    assert 2.5 < few / many < 5.5  # sqrt(400 / 25) = 4
    assert abs(float(rows[1]["point_cover"]) - 25.0) < 1.5


def test_pull_cvat_brings_points_shapes_as_keypoints(
    fiftyone, fake_cvat, monkeypatch, tmp_path: Path, capsys
) -> None:
    from tests.fake_cvat import make_frame

    state = fake_cvat.state
    project = state.add_project("survey-points", ["Porites", "Acropora"])
    frames = [make_frame("p0.jpg", 40, 20)]
    task = state.add_task(project, "t", frames, subset="Train", completed=True)
    state.add_shape(task, 0, "Porites", "points", [10, 5, 30, 15])
    state.add_shape(task, 0, "Acropora", "polygon", [1, 1, 8, 1, 4, 6])
    monkeypatch.setenv("FIFTYONE_CVAT_URL", fake_cvat.url)
    monkeypatch.setenv("FIFTYONE_CVAT_USERNAME", "alice")
    monkeypatch.setenv("FIFTYONE_CVAT_PASSWORD", "secret")
    monkeypatch.delenv("CVAT_ACCESS_TOKEN", raising=False)
    name = f"pull-points-{uuid.uuid4().hex[:6]}"
    media = ["--media-dir", str(tmp_path / "media")]
    assert main(["pull-cvat", "survey-points", "--dataset", name, *media]) == 0
    assert "point labels imported: Porites 2" in capsys.readouterr().out
    sample = fiftyone.load_dataset(name).first()
    (keypoint,) = sample.gt_points.keypoints
    assert keypoint.label == "Porites" and keypoint.points == [[0.25, 0.25], [0.75, 0.75]]
    assert [p.label for p in sample.gt_polylines.polylines] == ["Acropora"]
