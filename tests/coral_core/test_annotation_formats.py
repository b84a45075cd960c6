"""CVAT XML and COCO annotation files -> AnnotationSet: the formats as CVAT writes them, the
writers' round trip, and a sentence for every malformed file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coral_core.ensemble import result_set_from_coco
from coral_core.formats.annotations import (
    AnnotatedImage,
    AnnotationFormatError,
    AnnotationShape,
    parse_coco,
    parse_cvat_xml,
    read_annotations,
    subset_from_filename,
    to_coco,
    to_cvat_xml,
)
from coral_core.formats.polygons import Polygon
from coral_core.formats.rle import mask_to_coco_rle, mask_to_cvat_points

# A task export as CVAT 2.x writes it ("CVAT for images 1.1"), trimmed.
TASK_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>12</id>
      <name>Moorea 2025 q1-q2</name>
      <subset>Train</subset>
      <labels>
        <label><name>Acropora</name><color>#fa3253</color><type>any</type><attributes/></label>
        <label><name>Porites</name><color>#24b353</color><type>any</type><attributes/></label>
      </labels>
    </task>
  </meta>
  <image id="0" name="q1.jpg" width="8" height="6">
    <polygon label="Acropora" source="manual" occluded="0"
             points="1.00,1.00;5.00,1.00;5.00,4.00;1.00,4.00" z_order="2">
      <attribute name="health">bleached</attribute>
    </polygon>
    <polyline label="Porites" source="manual" occluded="1" points="0.50,0.50;7.50,5.50"
              z_order="0"/>
    <mask label="Porites" source="semi-auto" occluded="0" rle="1, 2, 1, 2" left="5" top="3"
          width="3" height="2" z_order="1"/>
    <box label="Acropora" source="manual" occluded="0" xtl="0.00" ytl="0.00" xbr="2.00"
         ybr="2.00" z_order="0"/>
    <points label="Acropora" source="manual" occluded="0" points="1.00,1.00" z_order="0"/>
    <tag label="Acropora" source="manual"/>
  </image>
  <image id="1" name="sub/q2.jpg" width="8" height="6">
  </image>
</annotations>
"""


def test_cvat_task_export_polygons_polylines_and_masks() -> None:
    result = parse_cvat_xml(TASK_XML, source="task.xml")
    assert result.format == "cvat-xml"
    assert result.labels == ("Acropora", "Porites")
    assert [image.name for image in result.images] == ["q1.jpg", "sub/q2.jpg"]
    first, second = result.images
    assert (first.width, first.height, first.subset, first.image_id) == (8, 6, "Train", 0)
    assert second.shapes == () and second.subset == "Train"
    polygon, polyline, mask = first.shapes
    assert polygon.kind == "polygon" and polygon.label == "Acropora" and polygon.z_order == 2
    np.testing.assert_array_equal(polygon.polygons[0].exterior, [[1, 1], [5, 1], [5, 4], [1, 4]])
    assert polygon.attributes == {"health": "bleached"} and not polygon.occluded
    assert polyline.kind == "polyline" and polyline.occluded
    np.testing.assert_array_equal(polyline.path, [[0.5, 0.5], [7.5, 5.5]])
    assert mask.kind == "mask" and mask.offset == (5, 3)
    # runs 1 bg, 2 fg, 1 bg, 2 fg over the 3x2 box, row-major
    np.testing.assert_array_equal(mask.mask, [[False, True, True], [False, True, True]])
    full = mask.full_mask(6, 8)
    assert full.sum() == 4 and full[3, 6] and full[4, 7] and not full[3, 5]
    assert result.skipped == {"rectangle": 1, "points": 1, "tag": 1}


def test_cvat_project_export_gives_each_image_its_subset_and_task() -> None:
    xml = """<annotations><version>1.1</version>
      <meta><project><labels><label><name>Acropora</name></label></labels></project></meta>
      <image id="0" name="a.jpg" subset="Train" task_id="3" width="4" height="4"/>
      <image id="1" name="b.jpg" subset="Validation" task_id="4" width="4" height="4"/>
    </annotations>"""
    result = parse_cvat_xml(xml)
    assert [(i.subset, i.task_id) for i in result.images] == [("Train", 3), ("Validation", 4)]
    assert result.labels == ("Acropora",)


def test_cvat_degenerate_shapes_are_counted_not_fatal() -> None:
    xml = """<annotations><image id="0" name="a.jpg" width="4" height="4">
      <polygon label="A" points="1,1;2,2"/>
      <polyline label="A" points="1,1"/>
      <polygon label="A" points="0,0;3,0;3,3"/>
    </image></annotations>"""
    result = parse_cvat_xml(xml)
    assert len(result.images[0].shapes) == 1
    assert result.skipped == {"invalid polygon": 1, "invalid polyline": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<annotations><image", "is not valid XML (line 1"),
        ("<dataset/>", "its root element is <dataset>"),
        ('<annotations><track id="0" label="A"/></annotations>', "'CVAT for video 1.1' export"),
        (
            '<annotations><image id="0" name="a.jpg" width="x" height="4"/></annotations>',
            "width='x'",
        ),
        ('<annotations><image id="0" width="4" height="4"/></annotations>', "has no name"),
        (
            '<annotations><image id="0" name="a.jpg" width="4" height="4">'
            '<polygon label="A" points="1;2;3"/></image></annotations>',
            "'x0,y0;x1,y1;...'",
        ),
        (
            '<annotations><image id="0" name="a.jpg" width="4" height="4">'
            '<polygon points="1,1;2,1;2,2"/></image></annotations>',
            "without a label",
        ),
        (
            '<annotations><image id="0" name="a.jpg" width="4" height="4"><mask label="A" '
            'rle="0, 4" left="2" top="2" width="4" height="1"/></image></annotations>',
            "does not lie inside the 4x4 image",
        ),
        (
            '<annotations><image id="0" name="a.jpg" width="4" height="4"><mask label="A" '
            'rle="0, 3" left="0" top="0" width="2" height="2"/></image></annotations>',
            "runs cover 3 pixels",
        ),
        (
            '<annotations><image id="0" name="a.jpg" width="4" height="4"><mask label="A" '
            'rle="a, b" left="0" top="0" width="2" height="2"/></image></annotations>',
            "needs rle='r0, r1, ...'",
        ),
    ],
)
def test_malformed_cvat_xml_gives_a_sentence(text: str, message: str) -> None:
    with pytest.raises(AnnotationFormatError, match=None) as info:
        parse_cvat_xml(text, source="bad.xml")
    assert message in str(info.value)
    assert str(info.value).startswith("bad.xml")


def _coco() -> dict:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1:4, 2:5] = True
    mask[2, 3] = False  # a hole
    return {
        "images": [
            {"id": 1, "file_name": "q1.jpg", "width": 8, "height": 6},
            {"id": 2, "file_name": "q2.jpg", "width": 8, "height": 6},
        ],
        "categories": [{"id": 1, "name": "Acropora"}, {"id": 2, "name": "Porites"}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2], [5, 5, 7, 5, 7, 6]],
                "iscrowd": 0,
                "attributes": {"occluded": True, "health": "ok"},
            },
            {
                "id": 11,
                "image_id": 1,
                "category_id": 2,
                "segmentation": mask_to_coco_rle(mask),
                "iscrowd": 1,
            },
            {
                "id": 12,
                "image_id": 2,
                "category_id": 2,
                "segmentation": {"size": [6, 8], "counts": [9, 2, 37]},  # CVAT's uncompressed
                "iscrowd": 1,
            },
            {"id": 13, "image_id": 2, "category_id": 1, "segmentation": [], "bbox": [0, 0, 2, 2]},
            {"id": 14, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, 2, 2]]},
        ],
    }


def test_coco_polygons_and_both_rle_forms() -> None:
    result = parse_coco(_coco(), source="c.json", subset="Validation")
    assert result.format == "coco" and result.labels == ("Acropora", "Porites")
    first, second = result.images
    assert first.subset == second.subset == "Validation"
    parts, mask = first.shapes
    assert parts.kind == "polygon" and len(parts.polygons) == 2 and parts.shape_id == 10
    assert parts.occluded and parts.attributes == {"health": "ok"}
    assert mask.kind == "mask" and mask.offset == (2, 1) and mask.mask.shape == (3, 3)
    assert not mask.mask[1, 1] and mask.mask.sum() == 8
    (uncompressed,) = second.shapes
    # column-major runs: 9 background, 2 foreground -> column 1, rows 3-4
    expected = np.zeros((6, 8), dtype=bool)
    expected[3:5, 1] = True
    np.testing.assert_array_equal(uncompressed.full_mask(6, 8), expected)
    assert result.skipped == {"rectangle": 1, "invalid polygon": 1}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("images"), "has no 'images'"),
        # a misspelled key would otherwise read as a file without labels
        (lambda d: d.update(anotations=d.pop("annotations")), "has no 'annotations' and has"),
        (lambda d: d.update(type="instances"), "keys COCO does not define: 'type'"),
        (lambda d: d["annotations"][0].update(image_id=99), "refers to image 99"),
        (lambda d: d["annotations"][0].update(category_id=7), "refers to category 7"),
        (lambda d: d["images"][0].update(width=0), "both must be positive whole numbers"),
        (lambda d: d["images"].append(dict(d["images"][0])), "repeats image id 1"),
        (lambda d: d["annotations"][1]["segmentation"].update(size=[5, 8]), "RLE has size [5, 8]"),
        (lambda d: d["annotations"][0].update(segmentation=[["a", "b"]]), "flat list of numbers"),
        (lambda d: d["categories"].append({"id": "x", "name": "A"}), "id 'x' is not an integer"),
        (lambda d: d["categories"].append({"id": 1, "name": "A"}), "id 1 is listed twice"),
    ],
)
def test_malformed_coco_gives_a_sentence(change, message: str) -> None:
    data = _coco()
    change(data)
    with pytest.raises(AnnotationFormatError) as info:
        parse_coco(data, source="c.json")
    assert message in str(info.value)


def test_a_coco_file_with_a_misspelled_key_is_refused_not_read_as_unlabelled(
    tmp_path: Path,
) -> None:
    """What `coralseg import` reads: without the check the file imports with no labels."""
    data = _coco()
    data["anotations"] = data.pop("annotations")
    path = tmp_path / "instances_Train.json"
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationFormatError, match="has no 'annotations'") as info:
        read_annotations(path)
    assert "'anotations'" in str(info.value) and "check their spelling" in str(info.value)


def test_coco_annotations_and_predictions_accept_the_same_image_ids() -> None:
    """One validator: file-stem image ids (as Ultralytics writes them) read in both."""
    data = _coco()
    for image in data["images"]:
        image["id"] = f"q{image['id']}"
    for annotation in data["annotations"]:
        annotation["image_id"] = f"q{annotation['image_id']}"
    assert [i.image_id for i in parse_coco(data).images] == ["q1", "q2"]
    results = [dict(a, score=0.5) for a in data["annotations"][1:3]]
    result_set = result_set_from_coco(results, data["categories"], data["images"])
    assert [i.image_id for i in result_set.instances] == ["q1", "q2"]


def test_read_annotations_picks_the_reader_and_the_subset(tmp_path: Path) -> None:
    xml = tmp_path / "annotations.xml"
    xml.write_text(TASK_XML)
    coco = tmp_path / "instances_Train.json"
    coco.write_text(json.dumps(_coco()))
    odd = tmp_path / "export.txt"
    odd.write_text(json.dumps(_coco()))
    assert read_annotations(xml).format == "cvat-xml"
    assert {i.subset for i in read_annotations(coco).images} == {"Train"}
    assert read_annotations(odd).format == "coco"
    assert read_annotations(odd, subset="test").images[0].subset == "test"
    assert subset_from_filename("instances_Validation.json") == "Validation"
    assert subset_from_filename("coco.json") is None

    with pytest.raises(AnnotationFormatError, match="does not exist"):
        read_annotations(tmp_path / "missing.xml")
    with pytest.raises(AnnotationFormatError, match="it is a folder"):
        read_annotations(tmp_path)
    (tmp_path / "broken.json").write_text("{'images': [}")
    with pytest.raises(AnnotationFormatError, match=r"broken.json is not valid JSON \(line 1"):
        read_annotations(tmp_path / "broken.json")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AnnotationFormatError, match="neither CVAT XML nor COCO JSON"):
        read_annotations(tmp_path / "notes.txt")


def _sample_images() -> list[AnnotatedImage]:
    rng = np.random.default_rng(3)
    mask = rng.random((5, 7)) < 0.5
    mask[0, 0] = True
    return [
        AnnotatedImage(
            "a.jpg",
            20,
            10,
            (
                AnnotationShape(
                    "Acropora",
                    "polygon",
                    polygons=(Polygon([[1, 1], [9, 1], [9, 8]]),),
                    attributes={"note": "x"},
                ),
                AnnotationShape("Porites", "mask", mask=mask, offset=(12, 4), occluded=True),
                AnnotationShape("Porites", "polyline", path=np.array([[0.5, 0.5], [3.25, 7.75]])),
            ),
            subset="Train",
        ),
        AnnotatedImage("b.jpg", 20, 10, subset="Test"),
    ]


def test_cvat_xml_writer_round_trips() -> None:
    images = _sample_images()
    back = parse_cvat_xml(to_cvat_xml(images, labels=["Acropora", "Porites", "Pocillopora"]))
    assert back.labels == ("Acropora", "Porites", "Pocillopora")
    assert [(i.name, i.width, i.height, i.subset) for i in back.images] == [
        ("a.jpg", 20, 10, "Train"),
        ("b.jpg", 20, 10, "Test"),
    ]
    polygon, mask, line = back.images[0].shapes
    np.testing.assert_allclose(polygon.polygons[0].exterior, [[1, 1], [9, 1], [9, 8]])
    assert polygon.attributes == {"note": "x"}
    original = images[0].shapes[1]
    np.testing.assert_array_equal(mask.full_mask(10, 20), original.full_mask(10, 20))
    assert mask.occluded
    np.testing.assert_allclose(line.path, [[0.5, 0.5], [3.25, 7.75]])
    # CVAT's runs, written as CVAT writes them: "r0, r1, ..."
    assert f'rle="{", ".join(map(str, mask_to_cvat_points(original.mask)[:-4]))}"' in to_cvat_xml(
        images
    )


def test_coco_writer_round_trips() -> None:
    images = _sample_images()
    data = json.loads(json.dumps(to_coco(images)))
    back = parse_coco(data)
    polygon, mask = back.images[0].shapes  # the open polyline has no area in COCO
    np.testing.assert_allclose(polygon.polygons[0].exterior, [[1, 1], [9, 1], [9, 8]])
    np.testing.assert_array_equal(mask.full_mask(10, 20), images[0].shapes[1].full_mask(10, 20))
    assert [c["name"] for c in data["categories"]] == ["Acropora", "Porites"]
