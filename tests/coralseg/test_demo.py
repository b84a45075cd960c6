"""``coralseg demo`` for real at a small size: sample -> FiftyOne -> masks -> training ->
evaluation onto the samples -> colonies, its rerun, its errors; and on EilatMixx photos."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from coral_core.evaluation.metrics import confusion_matrix, scores_from_confusion
from coralseg.cli import main
from coralseg.demo_run import REPO

# 10 images: 2 held out (test), of which 1 is inferred, so the evaluation predicts the other
SMALL = ["--sample-images", "10", "--iterations", "4", "--infer-images", "1"]


def _name() -> str:
    return f"demo-{uuid.uuid4().hex[:8]}"


def _printed_iou(text: str) -> dict[str, float]:
    """Class -> IoU from the printed per-class IoU table (rows like
    ``| Acropora | 12.34 | 56.78 |``), not from the colony table printed after it."""
    section = text.split("Per-class IoU on", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"\|\s*([A-Za-z][\w/ .-]*?)\s*\|\s*([0-9.]+|nan)\s*\|", section)
    return {name: float(value) for name, value in rows if name not in ("Class",)}


def _image_key(image: np.ndarray) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


@contextlib.contextmanager
def counting_model_calls() -> Iterator[dict[str, Counter]]:
    """How often each model runs on each image (keyed by the image's pixels) while inside:
    ``two_stage``: the predictor's call; ``semantic``: the semantic model, in any pass;
    ``instance``: the instance stage (:func:`coral_core.inference.instances.refine`), keyed
    by the semantic map it refines."""
    import coral_core.inference.pipeline as pipeline
    import coral_core.inference.semantic as semantic

    calls: dict[str, Counter] = {
        "two_stage": Counter(),
        "semantic": Counter(),
        "instance": Counter(),
    }
    original_call, original_predict = pipeline.TwoStagePredictor.__call__, semantic.predict
    original_refine = pipeline.refine

    def two_stage(self, image):
        calls["two_stage"][_image_key(image)] += 1
        return original_call(self, image)

    def predict(model, image, batch_size=None):
        calls["semantic"][_image_key(image)] += 1
        return original_predict(model, image, batch_size)

    def refine(prediction, *args, **kwargs):
        calls["instance"][_image_key(prediction.labels)] += 1
        return original_refine(prediction, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.TwoStagePredictor, "__call__", two_stage)
        patch.setattr(pipeline, "predict", predict)
        patch.setattr(semantic, "predict", predict)
        patch.setattr(pipeline, "refine", refine)
        yield calls


@pytest.fixture(scope="module")
def small_demo(fiftyone, tmp_path_factory: pytest.TempPathFactory):
    """One small demo run: its work dir, dataset name, output, duration, and how often each
    model ran on each image (:func:`counting_model_calls`)."""
    work = tmp_path_factory.mktemp("demo")
    name = _name()
    began = time.perf_counter()
    out = io.StringIO()
    with (
        counting_model_calls() as calls,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(io.StringIO()) as err,
    ):
        code = main(["demo", "--work-dir", str(work), "--dataset", name, *SMALL])
    seconds = time.perf_counter() - began
    (work / "demo-output.txt").write_text(out.getvalue())
    assert code == 0, out.getvalue()[-3000:] + err.getvalue()[-3000:]
    return work, name, out.getvalue(), seconds, calls


def test_demo_makes_every_output_and_prints_measured_numbers(small_demo, fiftyone) -> None:
    fo = fiftyone
    work, name, printed, _, _ = small_demo
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
    assert dataset.persistent and len(dataset) == 10
    assert dataset.count_sample_tags() == {"train": 6, "val": 2, "test": 2}
    assert "coralseg_eval" in dataset.list_evaluations()
    test = dataset.match_tags("test")
    iou_fields = [f for f in dataset.get_field_schema() if f.startswith("coralseg_eval_iou_")]
    assert iou_fields and test.count("coralseg_semantic") == 2

    # The printed per-class IoU is what the stored masks give (measured, not invented).
    classes = (work / "data" / "classes.txt").read_text().split()
    total = sum(
        confusion_matrix(
            cv2.imread(pred, cv2.IMREAD_UNCHANGED),
            cv2.imread(gt, cv2.IMREAD_UNCHANGED),
            len(classes),
        )
        for pred, gt in zip(
            *test.values(["coralseg_semantic.mask_path", "gt_polylines_mask.mask_path"]),
            strict=True,
        )
    )
    scores = scores_from_confusion(total, classes)
    printed_iou = _printed_iou(printed)
    stored = json.loads((work / "evaluation" / "scores.json").read_text())
    for index, cls in enumerate(classes):
        expected = scores.iou[index] * 100
        if np.isnan(expected):
            assert stored["iou"][cls] is None
            continue
        assert printed_iou[cls] == pytest.approx(expected, abs=0.01)
        assert stored["iou"][cls] == pytest.approx(expected, abs=0.01)

    # Colonies judged against the drawn polygons: FiftyOne's mask mAP, PQ and count error.
    assert "coralseg_eval_colonies" in dataset.list_evaluations()
    colony_line = re.search(
        r"colony PQ ([0-9.]+|n/a) .*; ([0-9]+) colonies predicted, ([0-9]+) drawn; count error "
        r"([0-9.]+) colonies per image on average; mask mAP ([0-9.]+|n/a)",
        printed,
    )
    assert colony_line, printed
    inferred = dataset.exists("coralseg_colonies")
    drawn = sum(len(polylines or ()) for polylines in inferred.values("gt_polylines.polylines"))
    assert int(colony_line.group(3)) == drawn > 0

    predictions = json.loads((work / "inference" / "predictions.json").read_text())
    found = len(predictions["annotations"])
    # The same colonies onto the sample, through the plugin's predict_samples.
    assert len(inferred.first().coralseg_colonies.detections) == found
    assert f"Colonies found on 1 image: {found} " in printed
    assert "  coralseg demo --sample-images 10 --work-dir" in printed
    assert printed.rstrip().endswith("--app")
    # what to give the App's forms, and where everything went
    assert f"Checkpoint  {work / 'train' / 'iter_4.pth'}" in printed
    assert f"Config      {REPO / 'configs'}" in printed
    assert f"work folder: {work}\n" in printed


def _pixels_of(paths: list[str]) -> Counter:
    """Each image's key, once: the photos as the models receive them."""
    from coral_core.formats.raster_io import open_image

    keys = Counter()
    for path in paths:
        with open_image(path) as source:
            keys[_image_key(source.read())] += 1
    return keys


def test_each_model_runs_once_per_image_in_one_inference_pass(small_demo, fiftyone) -> None:
    """Each held-out image goes through the semantic model exactly once: the inferred one
    inside the two-stage pass, whose raw map the evaluation reads, the others in the
    evaluation; the instance stage runs once on each inferred image. The two-stage results
    go both to disk and onto the samples."""
    work, name, _, _, calls = small_demo
    dataset = fiftyone.load_dataset(name)
    held_out = dataset.match_tags("test")
    inferred = held_out.exists("coralseg_colonies")
    assert len(held_out) == 2 and len(inferred) == 1  # --infer-images 1
    assert calls["semantic"] == _pixels_of(held_out.values("filepath"))
    assert calls["two_stage"] == _pixels_of(inferred.values("filepath"))
    # the instance stage refined the inferred image's semantic map, once
    sample = inferred.first()
    stem = Path(sample.filepath).stem
    raw = cv2.imread(str(work / "inference" / "semantic_raw" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert calls["instance"] == Counter({_image_key(raw): 1})
    # the evaluation read the two-stage pass's raw semantic map, not a second prediction
    evaluated_map = cv2.imread(sample.coralseg_semantic.mask_path, cv2.IMREAD_UNCHANGED)
    assert np.array_equal(evaluated_map, raw)
    # the files and the samples hold the same colonies
    predictions = json.loads((work / "inference" / "predictions.json").read_text())
    boxes = sorted(tuple(a["bbox"]) for a in predictions["annotations"])
    height, width = cv2.imread(sample.filepath).shape[:2]
    stored = sorted(
        tuple(
            round(v * s)
            for v, s in zip(d.bounding_box, (width, height, width, height), strict=True)
        )
        for d in sample.coralseg_colonies.detections
    )
    assert [tuple(round(v) for v in b) for b in boxes] == stored


def test_the_default_work_folder_is_outside_the_clone(monkeypatch, tmp_path: Path) -> None:
    from coralseg.cli import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser().parse_args(["demo"])
    folder = args.work_dir.expanduser().resolve()
    assert folder == tmp_path / "coralseg-demo"
    assert REPO not in folder.parents


def test_a_rerun_reuses_and_a_change_redoes_only_what_follows(small_demo, fiftyone, capsys) -> None:
    work, name, _, first_seconds, _ = small_demo
    args = ["demo", "--work-dir", str(work), "--dataset", name, *SMALL]
    began = time.perf_counter()
    with counting_model_calls() as calls:
        assert main(args) == 0
    seconds = time.perf_counter() - began
    printed = capsys.readouterr().out
    assert printed.count("already done, reused") == 7
    assert not any(calls.values())  # no model ran
    assert seconds < first_seconds / 2


def test_a_redone_step_redoes_what_reads_it_with_one_pass_per_image(
    small_demo, fiftyone, capsys
) -> None:
    """--redo evaluate predicts only the held-out image the two-stage pass did not see;
    --redo infer runs that pass again and so the evaluation and the cover that read it."""
    work, name, _, _, _ = small_demo
    args = ["demo", "--work-dir", str(work), "--dataset", name, *SMALL]
    held_out = fiftyone.load_dataset(name).match_tags("test")
    inferred = held_out.exists("coralseg_colonies").values("filepath")
    others = [p for p in held_out.values("filepath") if p not in inferred]
    scores = (work / "evaluation" / "scores.json").read_text()

    with counting_model_calls() as calls:
        assert main([*args, "--redo", "evaluate"]) == 0
    reused = re.findall(r"\(--redo (\w+) redoes it\)", capsys.readouterr().out)
    assert reused == ["source", "import", "prepare", "train", "infer", "cover"]
    assert calls["semantic"] == _pixels_of(others) and not calls["two_stage"]
    assert (work / "evaluation" / "scores.json").read_text() == scores

    with counting_model_calls() as calls:
        assert main([*args, "--redo", "infer"]) == 0
    reused = re.findall(r"\(--redo (\w+) redoes it\)", capsys.readouterr().out)
    assert reused == ["source", "import", "prepare", "train"]
    assert calls["semantic"] == _pixels_of(held_out.values("filepath"))
    assert calls["two_stage"] == _pixels_of(inferred)
    assert (work / "evaluation" / "scores.json").read_text() == scores


def test_a_lost_dataset_is_imported_again_and_the_model_kept(small_demo, fiftyone, capsys) -> None:
    """FiftyOne's embedded database is shared by every process of the user: a dataset made
    in another one is not found. The rerun says where it was made, imports it again from the
    work folder and keeps the masks and the model."""
    work, name, _, _, _ = small_demo
    checkpoint = work / "train" / "iter_4.pth"
    stamp = checkpoint.stat().st_mtime_ns
    state_path = work / "demo_state.json"
    state = json.loads(state_path.read_text())
    elsewhere = "database 'fiftyone' (FiftyOne's embedded MongoDB, data folder /other/home/db)"
    state["import"]["database"] = elsewhere
    state_path.write_text(json.dumps(state))
    fiftyone.delete_dataset(name)

    assert main(["demo", "--work-dir", str(work), "--dataset", name, *SMALL]) == 0
    printed = capsys.readouterr().out
    assert f"the FiftyOne dataset {name!r} was made in {elsewhere}, but this process reaches" in (
        printed.replace("\n      ", " ")
    )
    assert "importing it again (the masks and the model are kept)" in printed
    reused = re.findall(r"\(--redo (\w+) redoes it\)", printed)
    assert reused == ["source", "prepare", "train"]  # evaluate, infer, cover: on the new dataset
    assert checkpoint.stat().st_mtime_ns == stamp
    dataset = fiftyone.load_dataset(name)
    assert "coralseg_eval" in dataset.list_evaluations()
    assert len(dataset.exists("coralseg_colonies")) == 1


def test_a_finished_model_is_replaced_only_when_asked(small_demo, fiftyone, capsys) -> None:
    work, name, _, _, _ = small_demo
    checkpoint = work / "train" / "iter_4.pth"
    stamp = checkpoint.stat().st_mtime_ns
    changed = ["demo", "--work-dir", str(work), "--dataset", name, *SMALL[:2]]
    changed += ["--iterations", "5", "--infer-images", "1"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert (
        "holds a finished model (iter_4.pth) trained with other settings (iterations 4 -> 5)" in err
    )
    assert "pass --redo train to replace it" in err and "Traceback" not in err
    assert checkpoint.stat().st_mtime_ns == stamp

    assert main([*changed, "--redo", "train"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already done, reused") == 3  # sample, import, prepare
    assert (work / "train" / "iter_5.pth").is_file() and not checkpoint.exists()
    assert (work / "evaluation" / "scores.json").stat().st_mtime_ns > stamp


def test_demo_errors_are_sentences(fiftyone, tmp_path: Path, capsys) -> None:
    fo = fiftyone
    assert main(["demo", "--work-dir", str(tmp_path), "--images", str(tmp_path)]) == 2
    assert "--images needs --annotations" in capsys.readouterr().err

    taken = fo.Dataset(_name(), persistent=True)
    code = main(["demo", "--work-dir", str(tmp_path / "w"), "--dataset", taken.name, *SMALL])
    assert code == 2
    err = capsys.readouterr().err
    assert "already exists and this demo did not make it" in err and "Traceback" not in err
    assert "--redo import" in err
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
    from coral_core.formats.annotations import AnnotatedImage, AnnotationShape, to_coco
    from coral_core.labels.taxonomy import EILAT

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
