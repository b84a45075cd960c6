"""fiftyone_plugin.importing: annotation exports and their images as a new FiftyOne dataset,
built under a temporary name so that a refused or failed import leaves none."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.formats.annotations import (
    AnnotatedImage,
    AnnotationSet,
    AnnotationShape,
    to_cvat_xml,
)
from coral_core.labels.taxonomy import FAMILIES
from fiftyone_plugin.importing import (
    INFO_KEY,
    _attribute_name,
    _ImageFinder,
    check_labels,
    import_annotations,
)
from tests.coralseg.test_import import HEIGHT, WIDTH, _rectangle, _simple_export, _write_images


@pytest.fixture
def name(fiftyone):
    name = f"importing-{uuid.uuid4().hex[:8]}"
    yield name
    if fiftyone.dataset_exists(name):
        fiftyone.delete_dataset(name)


def datasets(fo, name: str) -> list[str]:
    """The datasets of that name, staging ones included."""
    return [n for n in fo.list_datasets() if n.startswith(name)]


def test_images_are_found_by_path_subset_folder_or_unique_name(tmp_path: Path) -> None:
    _write_images(
        tmp_path, ["a.jpg", "Train/b.jpg", "deep/x/c.jpg", "one/s1/d.jpg", "two/s2/d.jpg"]
    )
    finder = _ImageFinder(tmp_path)
    assert finder.find("a.jpg", None) == tmp_path / "a.jpg"
    assert finder.find("../../a.jpg", None) == tmp_path / "a.jpg"  # never above the folder
    assert finder.find("b.jpg", "Train") == tmp_path / "Train" / "b.jpg"
    assert finder.find("task_3/c.jpg", None) == tmp_path / "deep" / "x" / "c.jpg"
    assert finder.find("d.jpg", None) is None  # two candidates: neither is guessed
    assert finder.find("s2/d.jpg", None) == tmp_path / "two" / "s2" / "d.jpg"
    assert finder.find("s1\\d.jpg", None) == tmp_path / "one" / "s1" / "d.jpg"  # Windows
    assert finder.find("gone.jpg", None) is None


def test_an_import_records_its_sources_and_reports_what_it_made(
    fiftyone, name, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    _write_images(images, ["q1.jpg", "q2.jpg"])
    square = (_rectangle(1, 1, 9, 9),)
    photos = [
        AnnotatedImage(
            "q1.jpg",
            WIDTH,
            HEIGHT,
            (
                AnnotationShape("Acropora", "polygon", polygons=square),
                AnnotationShape("Porites", "polygon", polygons=square),
            ),
            subset="Training",
        ),
        AnnotatedImage("q2.jpg", WIDTH, HEIGHT, (), subset="extra"),
    ]
    xml = tmp_path / "annotations.xml"
    xml.write_text(to_cvat_xml(photos))

    report = import_annotations(name, [xml], images, taxonomy=FAMILIES, progress=False)

    dataset = fiftyone.load_dataset(name)
    assert datasets(fiftyone, name) == [name] and dataset.persistent
    assert dataset.info[INFO_KEY] == {
        "files": [str(xml)],
        "images_dir": str(images.resolve()),
        "formats": ["cvat-xml"],
    }
    q1, q2 = dataset.sort_by("filepath")
    assert (q1.tags, q1.cvat_subset, q1.annotation_file) == (["train"], "Training", str(xml))
    assert [p.label for p in q1.gt_polylines.polylines] == ["Acropora", "Porites"]
    assert q2.tags == [] and q2.gt_polylines.polylines == []  # a photo without colonies
    assert (report.samples, dict(report.splits)) == (2, {"train": 1, "untagged": 1})
    assert report.summary().splitlines() == [
        f"Imported 2 images into FiftyOne dataset {name!r} from {xml}",
        "  splits: train 1, untagged 1",
        "  polylines: Acropora 1, Porites 1",
        "  untagged samples have no train/val/test subset: pass --split to 'coralseg prepare' "
        "to split them",
    ]


def test_refused_imports_are_sentences_and_leave_no_dataset(fiftyone, name, tmp_path) -> None:
    images = tmp_path / "images"
    _write_images(images, ["q1.jpg"])
    (images / "notes.jpg").write_text("not a photo")
    xml = _simple_export(tmp_path)
    folders = [tmp_path / f"export_{n}" for n in range(3)]
    for folder in folders:
        folder.mkdir()
    twice = _simple_export(folders[0])
    unreadable = _simple_export(folders[1], names=("notes.jpg",))
    before = set(fiftyone.list_datasets())
    cases = [
        ([], images, "name at least one annotation file"),
        ([xml], tmp_path / "nowhere", "the images folder .*nowhere does not exist"),
        ([xml, twice], images, r"image 'q1\.jpg' is listed twice .* import each image once"),
        ([unreadable], images, r"notes\.jpg is not an image that can be read"),
    ]
    for files, folder, sentence in cases:
        with pytest.raises(CoralsegError, match=sentence):
            import_annotations(name, files, folder, progress=False)
        assert set(fiftyone.list_datasets()) == before
    nothing = _simple_export(folders[2], names=("gone.jpg",))
    with pytest.raises(CoralsegError, match="list no image that was found; nothing to import"):
        import_annotations(name, [nothing], images, skip_missing=True, progress=False)
    assert set(fiftyone.list_datasets()) == before


def test_a_rerun_needs_overwrite_and_replaces_the_dataset_whole(fiftyone, name, tmp_path) -> None:
    images = tmp_path / "images"
    _write_images(images, ["q1.jpg", "q2.jpg"])
    import_annotations(name, [_simple_export(tmp_path)], images, progress=False)
    first = fiftyone.load_dataset(name)
    with pytest.raises(CoralsegError, match=f"dataset {name!r} already exists; .*--overwrite"):
        import_annotations(name, [_simple_export(tmp_path)], images, progress=False)
    both = _simple_export(tmp_path, names=("q1.jpg", "q2.jpg"))
    import_annotations(name, [both], images, overwrite=True, progress=False)
    assert len(fiftyone.load_dataset(name)) == 2
    assert first.deleted and datasets(fiftyone, name) == [name]


def test_labels_are_checked_against_the_taxonomy_and_survey_columns_renamed() -> None:
    assert _attribute_name("Machine suggestion 1") == "machine_suggestion_1"
    assert _attribute_name("Label") == "survey_label"  # a Keypoint field of its own
    assert _attribute_name("1st") == "survey_1st"
    photo = AnnotatedImage(
        "q.jpg",
        WIDTH,
        HEIGHT,
        (
            AnnotationShape("background", "points", path=np.array([[1.0, 1.0]])),
            AnnotationShape("Isopora", "polygon", polygons=(_rectangle(1, 1, 9, 9),)),
        ),
    )
    with pytest.raises(CoralsegError) as caught:
        check_labels([AnnotationSet("f.xml", "cvat-xml", (photo,))], FAMILIES)
    assert str(caught.value).startswith("labels not in taxonomy 'families': 'Isopora' (1). ")
