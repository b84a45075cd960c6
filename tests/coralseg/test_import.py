"""``coralseg import`` on a real FiftyOne database: CVAT XML and COCO exports -> datasets in
pull-cvat's layout, and the round trip import -> prepare -> the masks that were drawn."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from coral_core.formats.annotations import AnnotatedImage, AnnotationShape, to_coco, to_cvat_xml
from coral_core.formats.polygons import Polygon
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from coralseg.cli import main

WIDTH, HEIGHT = 40, 30
VALUES = {name: MaskEncoding(FAMILIES).value_of(name) for name in FAMILIES.classes}


def _rectangle(x0: int, y0: int, x1: int, y1: int) -> Polygon:
    return Polygon([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _ell(x0: int, y0: int, x1: int, y1: int, x2: int, y2: int) -> Polygon:
    """An L on pixel edges: the box (x0, y0)-(x2, y1) plus the box (x0, y1)-(x1, y2)."""
    return Polygon([[x0, y0], [x2, y0], [x2, y1], [x1, y1], [x1, y2], [x0, y2]])


def _scene(seed: int) -> tuple[list[AnnotationShape], np.ndarray]:
    """Colonies on pixel edges in separate cells of the image, and the label mask they draw."""
    rng = np.random.default_rng(seed)
    expected = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    shapes = []
    cells = [(0, 0), (20, 0), (0, 15), (20, 15)]
    labels = ["Acropora", "Porites", "Pocillopora", "Montipora"]
    for (cx, cy), label in zip(cells, labels, strict=True):
        x0, y0 = cx + int(rng.integers(0, 4)), cy + int(rng.integers(0, 3))
        x2, y2 = x0 + int(rng.integers(8, 15)), y0 + int(rng.integers(6, 11))
        x1, y1 = x0 + int(rng.integers(2, x2 - x0)), y0 + int(rng.integers(2, y2 - y0))
        if label == "Montipora":  # a mask with a hole, as CVAT's brush draws it
            region = np.zeros((HEIGHT, WIDTH), dtype=bool)
            region[y0:y2, x0:x2] = True
            region[y0 + 2 : y0 + 4, x0 + 2 : x0 + 5] = False
            box = region[y0:y2, x0:x2]
            shapes.append(AnnotationShape(label, "mask", mask=box, offset=(x0, y0)))
            expected[region] = VALUES[label]
            continue
        if label == "Pocillopora":
            polygon = _rectangle(x0, y0, x2, y2)
            expected[y0:y2, x0:x2] = VALUES[label]
        else:
            polygon = _ell(x0, y0, x1, y1, x2, y2)
            expected[y0:y1, x0:x2] = VALUES[label]
            expected[y1:y2, x0:x1] = VALUES[label]
        shapes.append(AnnotationShape(label, "polygon", polygons=(polygon,)))
    shapes.append(
        AnnotationShape("Porites", "polyline", path=np.array([[1.0, 29.0], [39.0, 29.0]]))
    )
    return shapes, expected


def _write_images(folder: Path, names: list[str]) -> None:
    rng = np.random.default_rng(1)
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=95)


def _labels(out: Path, split: str, stem: str) -> np.ndarray:
    return cv2.imread(str(out / split / "labels" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)


def _name() -> str:
    return f"import-{uuid.uuid4().hex[:8]}"


def test_cvat_xml_import_then_prepare_gives_the_drawn_masks_back(
    fiftyone, tmp_path: Path, capsys
) -> None:
    fo = fiftyone
    images_dir = tmp_path / "images"
    # CVAT records names as uploaded; one sits elsewhere on disk than its recorded path.
    _write_images(images_dir, ["q1.jpg", "q2.jpg", "q3.jpg"])
    scenes = {stem: _scene(seed) for seed, stem in enumerate(["q1", "q2", "q3"])}
    subsets = {"q1": "Train", "q2": "Validation", "q3": "Test"}
    recorded = {"q1": "q1.jpg", "q2": "q2.jpg", "q3": "task_3/q3.jpg"}
    images = [
        AnnotatedImage(recorded[s], WIDTH, HEIGHT, tuple(scenes[s][0]), subset=subsets[s])
        for s in scenes
    ]
    xml = tmp_path / "annotations.xml"
    xml.write_text(to_cvat_xml(images))
    name = _name()
    args = ["import", str(xml), "--images", str(images_dir), "--dataset", name]
    assert main([*args, "--mask-tolerance", "0", "--taxonomy", "families"]) == 0
    printed = capsys.readouterr().out
    assert f"Imported 3 images into FiftyOne dataset {name!r}" in printed
    assert "polylines: Acropora 3, Montipora 3, Pocillopora 3, Porites 6" in printed

    dataset = fo.load_dataset(name)
    assert dataset.persistent and len(dataset) == 3
    assert sorted(dataset.distinct("tags")) == ["test", "train", "val"]
    assert sorted(dataset.values("cvat_subset")) == ["Test", "Train", "Validation"]
    kinds = dataset.values("gt_polylines.polylines.cvat_shape_type", unwind=True)
    assert sorted(set(kinds)) == ["mask", "polygon", "polyline"]
    closed = dataset.values("gt_polylines.polylines.closed", unwind=True)
    assert closed.count(False) == 3  # the open polylines
    assert dataset.values("metadata.width") == [WIDTH] * 3

    out = tmp_path / "prepared"
    assert main(["prepare", name, "--taxonomy", "families", "--out", str(out)]) == 0
    for stem, split in (("q1", "train"), ("q2", "val"), ("q3", "test")):
        np.testing.assert_array_equal(_labels(out, split, stem), scenes[stem][1])


def test_coco_import_takes_subsets_from_file_names_and_gives_the_masks_back(
    fiftyone, tmp_path: Path
) -> None:
    fo = fiftyone
    images_dir = tmp_path / "images"
    # CVAT's COCO dataset export: images/<subset>/<name>, one JSON per subset.
    _write_images(images_dir, ["Train/a.jpg", "Train/b.jpg", "Validation/c.jpg"])
    scenes = {stem: _scene(10 + seed) for seed, stem in enumerate("abc")}
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    files = []
    for subset, stems in (("Train", "ab"), ("Validation", "c")):
        images = [AnnotatedImage(f"{s}.jpg", WIDTH, HEIGHT, tuple(scenes[s][0])) for s in stems]
        path = annotations / f"instances_{subset}.json"
        path.write_text(json.dumps(to_coco(images, labels=FAMILIES.classes)))
        files.append(str(path))
    name = _name()
    assert main(["import", *files, "--images", str(images_dir), "--dataset", name]) == 0
    dataset = fo.load_dataset(name)
    assert sorted(dataset.count_sample_tags().items()) == [("train", 2), ("val", 1)]
    assert set(dataset.values("gt_polylines.polylines.cvat_shape_id", unwind=True)) != {None}

    out = tmp_path / "prepared"
    assert main(["prepare", name, "--taxonomy", "families", "--out", str(out)]) == 0
    for stem, split in (("a", "train"), ("b", "train"), ("c", "val")):
        written = _labels(out, split, stem)
        # COCO has no open polylines; the mask's outline at the default half-pixel tolerance
        # and the polygons on pixel edges still come back exactly here.
        np.testing.assert_array_equal(written, scenes[stem][1])


def _simple_export(tmp_path: Path, labels=("Acropora",), names=("q1.jpg",)) -> Path:
    images = [
        AnnotatedImage(
            name,
            WIDTH,
            HEIGHT,
            tuple(
                AnnotationShape(label, "polygon", polygons=(_rectangle(1, 1, 9, 9),))
                for label in labels
            ),
            subset="train",
        )
        for name in names
    ]
    xml = tmp_path / "annotations.xml"
    xml.write_text(to_cvat_xml(images))
    return xml


def test_import_errors_are_sentences_and_leave_no_dataset(fiftyone, tmp_path: Path, capsys) -> None:
    fo = fiftyone
    images_dir = tmp_path / "images"
    _write_images(images_dir, ["q1.jpg"])
    before = set(fo.list_datasets())

    def fails(args: list[str]) -> str:
        assert main(["import", *args]) == 2
        assert set(fo.list_datasets()) == before, "a failed import left a dataset"
        return capsys.readouterr().err

    name = _name()
    xml = _simple_export(tmp_path, names=("q1.jpg", "gone1.jpg", "gone2.jpg"))
    err = fails([str(xml), "--images", str(images_dir), "--dataset", name])
    assert "2 of the annotated images are not in" in err and "gone1.jpg" in err
    assert "--skip-missing" in err and "Traceback" not in err

    xml = _simple_export(tmp_path, labels=("Acropora", "Isopora"))
    err = fails(
        [str(xml), "--images", str(images_dir), "--dataset", name, "--taxonomy", "families"]
    )
    assert "labels not in taxonomy 'families': 'Isopora' (1)" in err
    mapped = ["--taxonomy", "families", "--label-map", "Isopora=Acropora"]
    assert main(["import", str(xml), "--images", str(images_dir), "--dataset", name, *mapped]) == 0
    before = set(fo.list_datasets())
    err = fails([str(xml), "--images", str(images_dir), "--dataset", name])
    assert f"dataset {name!r} already exists" in err and "--overwrite" in err

    broken = tmp_path / "broken.xml"
    broken.write_text("<annotations><image id='0'")
    err = fails([str(broken), "--images", str(images_dir), "--dataset", _name()])
    assert "broken.xml is not valid XML" in err

    small = AnnotatedImage("q1.jpg", WIDTH // 2, HEIGHT // 2, subset="train")
    resized = tmp_path / "resized.xml"
    resized.write_text(to_cvat_xml([small]))
    err = fails([str(resized), "--images", str(images_dir), "--dataset", _name()])
    assert f"q1.jpg is {WIDTH}x{HEIGHT} but the annotations say {WIDTH // 2}x{HEIGHT // 2}" in err

    err = fails([str(xml), "--images", str(tmp_path / "nowhere"), "--dataset", _name()])
    assert "nowhere does not exist" in err


def test_skip_missing_and_overwrite(fiftyone, tmp_path: Path, capsys) -> None:
    fo = fiftyone
    images_dir = tmp_path / "images"
    _write_images(images_dir, ["q1.jpg", "q2.jpg"])
    name = _name()
    xml = _simple_export(tmp_path, names=("q1.jpg", "gone.jpg"))
    base = ["import", str(xml), "--images", str(images_dir), "--dataset", name]
    assert main([*base, "--skip-missing"]) == 0
    assert "left out 1 images not found: gone.jpg" in capsys.readouterr().out
    assert len(fo.load_dataset(name)) == 1

    xml = _simple_export(tmp_path, names=("q1.jpg", "q2.jpg"))
    assert main([*base, "--overwrite"]) == 0
    assert len(fo.load_dataset(name)) == 2
    assert [n for n in fo.list_datasets() if n.startswith(name)] == [name]
