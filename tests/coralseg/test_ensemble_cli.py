"""``coralseg ensemble`` end to end: files in, a merged COCO file out, errors as one sentence.

The predictions are those of tests/coral_core/test_ensemble.py, written as the files
users have: A as a COCO dataset-style file, B as a bare results list (as YOLO writes it)
with its images and categories in another file, C dataset-style with polygons.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pycocotools.coco import COCO

from coral_core.ensemble import result_set_to_coco
from coralseg.cli import main
from tests.coral_core.test_ensemble import source_a, source_b, source_c


def write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def prediction_files(folder: Path) -> list[str]:
    """A and C as dataset-style files; B as a results list plus ``b_images.json``."""
    a, b, c = (result_set_to_coco(s) for s in (source_a(), source_b(), source_c()))
    write(folder / "b_images.json", {"images": b["images"], "categories": b["categories"]})
    results = [
        {k: v for k, v in ann.items() if k not in ("id", "area", "iscrowd")}
        for ann in b["annotations"]
    ]
    return [
        write(folder / "a.json", a),
        write(folder / "b.json", results),
        write(folder / "c.json", c),
    ]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["ensemble", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_weighted_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = prediction_files(tmp_path)
    out = tmp_path / "out" / "merged.json"
    code, stdout, stderr = run(
        capsys, a, b, c, "--images", str(tmp_path / "b_images.json"), "--out", str(out)
    )
    assert (code, stderr) == (0, "")
    assert f"weighted ensemble (mask IoU >= 0.5) of 3 files -> {out}" in stdout
    lines = stdout.splitlines()
    assert lines[2].split()[-3:] == ["1", "3", "3"]  # A: weight, instances, used
    assert lines[3].split()[-3:] == ["1", "3", "3"]
    assert lines[4].split()[-3:] == ["1", "2", "2"]
    assert "merged: 6 instances on 3 images, 3 categories" in stdout
    assert f"note: {b}: categories no other file has: pocillopora" in stdout
    assert f"note: {c}: 1 image(s) no other file has: c.jpg" in stdout

    coco = COCO(str(out))
    assert len(coco.getAnnIds()) == 6
    assert coco.loadCats(coco.getCatIds()) == [
        {"id": 1, "name": "Acropora"},
        {"id": 2, "name": "Porites"},
        {"id": 3, "name": "pocillopora"},
    ]
    data = json.loads(out.read_text())
    assert data["info"]["strategy"] == "weighted"
    ground_truth = COCO()
    ground_truth.dataset = {"images": data["images"], "categories": data["categories"]}
    ground_truth.createIndex()
    assert len(ground_truth.loadRes(data["annotations"]).getAnnIds()) == 6
    assert not [p.name for p in out.parent.iterdir() if p.name != "merged.json"]


def test_voting_nms_and_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = prediction_files(tmp_path)
    images = ["--images", str(tmp_path / "b_images.json")]
    out = tmp_path / "merged.json"
    code, stdout, _ = run(capsys, a, b, c, *images, "--strategy", "voting", "--out", str(out))
    assert code == 0
    assert "merged: 1 instances" in stdout
    code, _, _ = run(
        capsys,
        a,
        b,
        c,
        *images,
        "--strategy",
        "nms",
        "--class-agnostic",
        "--weights",
        "1,1,4",
        "--out",
        str(out),
    )
    assert code == 0
    coco = COCO(str(out))
    scores = sorted(round(ann["score"], 3) for ann in coco.loadAnns(coco.getAnnIds(imgIds=[1])))
    assert scores == [0.075, 0.2, 0.5]  # C's colony leads and suppresses A's and B's


def test_label_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, _ = prediction_files(tmp_path)
    images = json.loads((tmp_path / "b_images.json").read_text())
    images["categories"][2]["name"] = "pocillo"
    write(tmp_path / "b_images.json", images)
    out = tmp_path / "merged.json"
    code, stdout, _ = run(
        capsys,
        a,
        b,
        "--images",
        str(tmp_path / "b_images.json"),
        "--out",
        str(out),
        "--label-map",
        "pocillo=Pocillopora",
        "--taxonomy",
        "families",
    )
    assert code == 0
    assert [c["name"] for c in json.loads(out.read_text())["categories"]] == [
        "Acropora",
        "Porites",
        "Pocillopora",
    ]
    assert f"note: {b}: categories no other file has: Pocillopora" in stdout


def expect_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, _, stderr = run(capsys, *args)
    assert code == 2
    assert stderr.startswith("coralseg ensemble: error: ")
    assert "Traceback" not in stderr
    return stderr


def test_errors_are_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = prediction_files(tmp_path)
    images = ["--images", str(tmp_path / "b_images.json")]
    out = ["--out", str(tmp_path / "merged.json")]
    assert "--weights must be numbers separated by commas" in expect_error(
        capsys, a, c, "--weights", "1,x", *out
    )
    assert "got 3 weights for 2 result sets" in expect_error(
        capsys, a, c, "--weights", "1,1,1", *out
    )
    assert "weights must be positive numbers" in expect_error(
        capsys, a, c, "--weights", "1,-1", *out
    )
    assert f"{b} has no images (a COCO results list" in expect_error(capsys, a, b, *out)
    assert "is one of the prediction files" in expect_error(capsys, a, c, "--out", a)
    assert "only applies to the nms strategy" in expect_error(
        capsys, a, c, "--class-agnostic", *out
    )
    assert "at least two result sets, got 1" in expect_error(capsys, a, *out)
    assert "does not exist" in expect_error(capsys, a, str(tmp_path / "missing.json"), *out)
    not_json = tmp_path / "notes.json"
    not_json.write_text("not json")
    assert f"{not_json} is not a JSON file" in expect_error(capsys, a, str(not_json), *out)
    dataset = write(tmp_path / "other.json", {"info": {}})
    assert f"{dataset} has no 'annotations'" in expect_error(capsys, a, dataset, *out)
    misspelled = write(tmp_path / "typo.json", {"anotations": []})
    assert "keys COCO does not define: 'anotations'" in expect_error(capsys, a, misspelled, *out)
    gt = write(tmp_path / "gt.json", {**json.loads(Path(a).read_text()), "annotations": [{}]})
    assert "looks like ground truth" in expect_error(capsys, a, gt, *out)
    wrong_size = json.loads(Path(c).read_text())
    wrong_size["images"][1]["width"] = 40
    write(tmp_path / "c.json", wrong_size)
    assert "prediction #1: its mask is 20x16 but image 'a.jpg' is 40x16" in expect_error(
        capsys, a, c, *out
    )
    assert "2 --images files for 1 prediction files without images" in expect_error(
        capsys, a, b, *images, *images, *out
    )
    assert not (tmp_path / "merged.json").exists()


def test_argparse_errors_use_the_same_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ensemble", "a.json", "b.json", "--out", "m.json", "--strategy", "wbf"])
    assert info.value.code == 2
    assert "coralseg ensemble: error: argument --strategy: invalid choice: 'wbf'" in (
        capsys.readouterr().err
    )
