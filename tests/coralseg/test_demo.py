"""``coralseg demo`` for real at a small size: sample -> FiftyOne -> masks -> training ->
evaluation onto the samples -> colonies, its rerun, its errors; and on EilatMixx photos."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from coral_core.metrics import confusion_matrix, scores_from_confusion
from coralseg.cli import main

SMALL = ["--sample-images", "5", "--iterations", "4", "--infer-images", "1"]


def _name() -> str:
    return f"demo-{uuid.uuid4().hex[:8]}"


def _printed_iou(text: str) -> dict[str, float]:
    """Class -> IoU from the printed table (rows like ``| Acropora | 12.34 | 56.78 |``)."""
    rows = re.findall(r"\|\s*([A-Za-z][\w/ .-]*?)\s*\|\s*([0-9.]+|nan)\s*\|", text)
    return {name: float(value) for name, value in rows if name not in ("Class",)}


@pytest.fixture(scope="module")
def small_demo(fiftyone, tmp_path_factory: pytest.TempPathFactory):
    """One small demo run: its work dir, dataset name, output and duration."""
    work = tmp_path_factory.mktemp("demo")
    name = _name()
    began = time.perf_counter()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["demo", "--work-dir", str(work), "--dataset", name, *SMALL])
    seconds = time.perf_counter() - began
    (work / "demo-output.txt").write_text(out.getvalue())
    assert code == 0, out.getvalue()[-3000:] + err.getvalue()[-3000:]
    return work, name, out.getvalue(), seconds


def test_demo_makes_every_output_and_prints_measured_numbers(small_demo, fiftyone) -> None:
    fo = fiftyone
    work, name, printed, _ = small_demo
    for path in (
        "sample/annotations.xml",
        "data/manifest.json",
        "train/iter_4.pth",
        "evaluation/confusion_matrix.png",
        "evaluation/scores.json",
        "inference/predictions.json",
    ):
        assert (work / path).is_file(), path
    assert len(list((work / "inference" / "visualizations").glob("*.jpg"))) == 1

    dataset = fo.load_dataset(name)
    assert dataset.persistent and len(dataset) == 5
    assert dataset.count_sample_tags() == {"train": 3, "val": 1, "test": 1}
    assert "coralseg_eval" in dataset.list_evaluations()
    test = dataset.match_tags("test")
    iou_fields = [f for f in dataset.get_field_schema() if f.startswith("coralseg_eval_iou_")]
    assert iou_fields and test.count("coralseg_semantic") == 1

    # The printed per-class IoU is what the stored masks give (measured, not invented).
    sample = test.first()
    pred = cv2.imread(sample.coralseg_semantic.mask_path, cv2.IMREAD_UNCHANGED)
    gt = cv2.imread(sample.gt_polylines_mask.mask_path, cv2.IMREAD_UNCHANGED)
    classes = (work / "data" / "classes.txt").read_text().split()
    scores = scores_from_confusion(confusion_matrix(pred, gt, len(classes)), classes)
    printed_iou = _printed_iou(printed)
    stored = json.loads((work / "evaluation" / "scores.json").read_text())
    for index, cls in enumerate(classes):
        expected = scores.iou[index] * 100
        if np.isnan(expected):
            assert stored["iou"][cls] is None
            continue
        assert printed_iou[cls] == pytest.approx(expected, abs=0.01)
        assert stored["iou"][cls] == pytest.approx(expected, abs=0.01)

    predictions = json.loads((work / "inference" / "predictions.json").read_text())
    found = len(predictions["annotations"])
    # The same colonies onto the sample, through the plugin's predict_samples.
    assert len(sample.coralseg_colonies.detections) == found
    assert f"Colonies found on 1 image: {found} " in printed
    assert "  coralseg demo --sample-images 5 --work-dir" in printed
    assert printed.rstrip().endswith("--app")


def test_a_rerun_reuses_and_a_change_redoes_only_what_follows(small_demo, fiftyone, capsys) -> None:
    work, name, _, first_seconds = small_demo
    args = ["demo", "--work-dir", str(work), "--dataset", name, *SMALL]
    began = time.perf_counter()
    assert main(args) == 0
    seconds = time.perf_counter() - began
    printed = capsys.readouterr().out
    assert printed.count("already done, reused") == 7
    assert seconds < first_seconds / 2
    checkpoint = work / "train" / "iter_4.pth"
    stamp = checkpoint.stat().st_mtime

    changed = [*args[:-6], "--sample-images", "5", "--iterations", "5", "--infer-images", "1"]
    assert main(changed) == 0
    printed = capsys.readouterr().out
    assert printed.count("already done, reused") == 3  # sample, import, prepare
    assert (work / "train" / "iter_5.pth").is_file() and not checkpoint.exists()
    assert (work / "evaluation" / "scores.json").stat().st_mtime > stamp


def test_demo_errors_are_sentences(fiftyone, tmp_path: Path, capsys) -> None:
    fo = fiftyone
    assert main(["demo", "--work-dir", str(tmp_path), "--images", str(tmp_path)]) == 2
    assert "--images needs --annotations" in capsys.readouterr().err

    taken = fo.Dataset(_name(), persistent=True)
    code = main(["demo", "--work-dir", str(tmp_path / "w"), "--dataset", taken.name, *SMALL])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists and this demo did not make it" in err and "Traceback" not in err
    assert len(fo.load_dataset(taken.name)) == 0

    assert main(["demo", "--sample-images", "2"]) == 2
    assert "at least 3" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.shared_data
def test_demo_on_eilatmixx_photos_from_a_coco_export(
    shared_data: Path, fiftyone, tmp_path: Path, capsys
) -> None:
    """Real reef photos: EilatMixx label masks written as a COCO export with RLE masks (as
    CVAT writes brush masks), then the whole demo on them."""
    from coral_core.annotation_formats import AnnotatedImage, AnnotationShape, to_coco
    from coral_core.taxonomy import EILAT

    eilat = shared_data / "eilat_train"
    stems = sorted(p.stem for p in (eilat / "labels").glob("*.png"))[:8]
    images = []
    for index, stem in enumerate(stems):
        labels = cv2.imread(str(eilat / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        shapes = []
        for value, name in enumerate(EILAT.classes):
            region = labels == value
            count, parts, stats, _ = cv2.connectedComponentsWithStats(
                region.astype(np.uint8), connectivity=8
            )
            for part in range(1, count):
                x, y, w, h, area = stats[part]
                if area >= 50:
                    mask = parts[y : y + h, x : x + w] == part
                    shapes.append(AnnotationShape(name, "mask", mask=mask, offset=(x, y)))
        subset = "Test" if index < 2 else "Validation" if index < 3 else "Train"
        images.append(
            AnnotatedImage(f"{stem}.jpg", labels.shape[1], labels.shape[0], tuple(shapes), subset)
        )
    # CVAT's COCO export: one file per subset, named after it.
    files = []
    for subset in ("Train", "Validation", "Test"):
        path = tmp_path / f"instances_{subset}.json"
        path.write_text(
            json.dumps(to_coco([i for i in images if i.subset == subset], EILAT.classes))
        )
        files += ["--annotations", str(path)]
    work = tmp_path / "work"
    name = _name()
    args = ["demo", "--images", str(eilat / "images"), *files]
    args += ["--taxonomy", "eilat", "--size", "460", "--iterations", "40", "--infer-images", "1"]
    assert main([*args, "--work-dir", str(work), "--dataset", name]) == 0
    printed = capsys.readouterr().out
    assert "Per-class IoU on 2 images held out" in printed
    assert "Stylophora" in printed
    assert (work / "inference" / "predictions.json").is_file()
    assert fiftyone.load_dataset(name).count_sample_tags() == {"test": 2, "train": 5, "val": 1}


def test_the_app_finds_the_coralseg_plugin_through_the_link(fiftyone, tmp_path: Path, capsys):
    import fiftyone.plugins as fop

    from coralseg.demo_app import REPO, ensure_plugin

    folder = ensure_plugin(tmp_path / "plugins")
    assert (folder / "coralseg").resolve() == REPO
    assert ensure_plugin(folder) == folder  # a second time: nothing new
    assert [p.name for p in folder.iterdir()] == ["coralseg"]
    before = fiftyone.config.plugins_dir
    fiftyone.config.plugins_dir = str(folder)
    try:
        assert "@coralseg/coralseg" in [plugin.name for plugin in fop.list_plugins()]
    finally:
        fiftyone.config.plugins_dir = before

    other = tmp_path / "other"
    (other / "coralseg").mkdir(parents=True)
    ensure_plugin(other)
    assert "is another plugin" in capsys.readouterr().out
