"""Point labels: CoralNet CSV and CPCe files, label codes, point masks, densification and
point-count emulation. The files are written here in the layouts the tools export."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from coral_core.ecology.legend import ClassLegend
from coral_core.ecology.point_survey import point_survey_cover
from coral_core.formats.annotations import (
    AnnotationFormatError,
    fit_to_photo,
    map_label_codes,
    read_annotations,
    read_label_codes,
)
from coral_core.labels.densify import densify_points, superpixel_levels
from coral_core.labels.point_labels import LabeledPoint, simulate_points, stamp_points
from coral_core.labels.taxonomy import EILAT, FAMILIES, MaskEncoding

CORALNET_HEADER = [
    "Name",
    "Date",
    "Aux1",
    "Aux2",
    "Row",
    "Column",
    "Label",
    "Machine suggestion 1",
]


def _write_coralnet(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CORALNET_HEADER)
        writer.writerows(rows)
    return path


def test_coralnet_csv_points_metadata_and_codes(tmp_path: Path) -> None:
    path = _write_coralnet(
        tmp_path / "annotations.csv",
        [
            ["q1.jpg", "2019-05-04", "Rai", "T1", 10, 20, "Porit", "Porit"],
            ["q1.jpg", "2019-05-04", "Rai", "T1", 0, 99, "ACR", "ACR"],
            ["q2.jpg", "2020-01-02", "Tub", "T2", 5, 5, "Acropora", "ACR"],
        ],
    )
    annotations = read_annotations(path, subset="train")
    assert annotations.format == "coralnet-csv"
    first, second = annotations.images
    assert (first.name, second.name) == ("q1.jpg", "q2.jpg")
    assert first.width == 0 and first.subset == "train"
    # Constant columns are the image's metadata; varying ones stay on the points.
    assert first.metadata == {"Date": "2019-05-04", "Aux1": "Rai", "Aux2": "T1"}
    assert [s.attributes for s in first.shapes] == [
        {"Machine suggestion 1": "Porit"},
        {"Machine suggestion 1": "ACR"},
    ]
    np.testing.assert_array_equal(first.shapes[0].path, [[20.5, 10.5]])  # (x, y) pixel centre
    assert [s.label for s in first.shapes] == ["Porit", "ACR"]

    codes_csv = tmp_path / "codes.csv"
    codes_csv.write_text("code,class\nPorit,Porites\nACR,Acropora\n")
    mapped = map_label_codes(annotations, read_label_codes(codes_csv), FAMILIES)
    labels = [s.label for image in mapped.images for s in image.shapes]
    assert labels == ["Porites", "Acropora", "Acropora"]  # "Acropora" is a class
    assert mapped.images[0].shapes[0].attributes["label_code"] == "Porit"

    codes_yaml = tmp_path / "codes.yaml"
    codes_yaml.write_text("Porit: Porites\n")
    with pytest.raises(AnnotationFormatError, match=r"1 label codes .* 'ACR' \(1\)"):
        map_label_codes(annotations, read_label_codes(codes_yaml), FAMILIES)

    sized = fit_to_photo(first, 100, 50)
    assert (sized.width, sized.height) == (100, 50)
    with pytest.raises(ValueError, match="outside the 90x50 photo"):
        fit_to_photo(first, 90, 50)


def test_coralnet_csv_is_strict(tmp_path: Path) -> None:
    bad_row = _write_coralnet(tmp_path / "bad.csv", [["q.jpg", "", "", "", "1.5", 2, "A", ""]])
    with pytest.raises(AnnotationFormatError, match="line 2: Row must be a pixel index"):
        read_annotations(bad_row)
    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("Name,Row,Column\nq.jpg,1,2\n")
    with pytest.raises(AnnotationFormatError, match="no Label column"):
        read_annotations(no_label)


def test_cpce_file_scaled_to_the_photo(tmp_path: Path) -> None:
    # 1200 x 800 px at CPCe's 15 units per pixel.
    lines = [
        '"C:\\CPCe\\codes.txt","D:\\Reef\\Site A\\IMG_0001.JPG",18000,12000,1200,800',
        "0,12000",
        "18000,12000",
        "18000,0",
        "0,0",
        "3",
        "1500,3000",
        "9000,6000",
        "17985,11985",
        '"1","ACR","Notes",""',
        '"2","Sand","Notes","shaded"',
        '"3","","Notes",""',
        '"Site A"',
        '"Transect 4"',
    ]
    path = tmp_path / "IMG_0001.cpc"
    path.write_text("\r\n".join(lines) + "\r\n")
    annotations = read_annotations(path)
    (image,) = annotations.images
    assert annotations.format == "cpce" and image.name == "IMG_0001.JPG"
    assert [s.label for s in image.shapes] == ["ACR", "Sand"]  # point 3 has no label
    assert image.metadata["cpce_header_2"] == "Transect 4"
    sized = fit_to_photo(image, 1200, 800)
    np.testing.assert_allclose(sized.shapes[0].path, [[100.0, 200.0]])
    np.testing.assert_allclose(sized.shapes[1].path, [[600.0, 400.0]])
    assert sized.shapes[1].attributes["notes"] == "shaded"


def test_point_masks_and_simulated_surveys() -> None:
    dense = np.full((40, 60), 255, np.uint8)
    dense[:, :30] = 0
    dense[10:30, 30:] = 1
    names = ["Acropora", "Porites"]
    points = simulate_points(dense, 25, np.random.default_rng(0), names)
    assert len(points) == 25
    values = {"Acropora": 0, "Porites": 1}
    sparse = stamp_points(np.full_like(dense, 255), points, values, radius=0)
    labelled = sparse != 255
    assert labelled.sum() == 25  # one pixel each, all distinct
    np.testing.assert_array_equal(sparse[labelled], dense[labelled])
    disc = stamp_points(np.full_like(dense, 255), [LabeledPoint("Porites", 0.5, 0.5)], values, 2)
    assert (disc == 1).sum() == 13  # radius-2 disc
    with pytest.raises(ValueError, match="without a mask value"):
        stamp_points(dense, [LabeledPoint("Pocillopora", 0.1, 0.1)], values)


def test_superpixel_densification_follows_colour_edges() -> None:
    rng = np.random.default_rng(1)
    image = np.zeros((96, 128, 3), np.uint8)
    truth = np.zeros((96, 128), np.uint8)
    yy, xx = np.mgrid[0:96, 0:128]
    blob = (yy - 48) ** 2 + (xx - 64) ** 2 < 30**2
    truth[blob] = 1
    image[:] = (190, 170, 120)
    image[blob] = (40, 60, 200)
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    names = ["Sand", "Porites"]
    points = simulate_points(truth, 12, np.random.default_rng(3), names)
    sparse = stamp_points(np.full_like(truth, 255), points, {"Sand": 0, "Porites": 1}, 1)
    dense = densify_points(sparse, superpixel_levels(image, levels=(6, 24, 96)))
    covered = dense != 255
    assert covered.mean() > 0.9  # far more than the points
    assert (dense[covered] == truth[covered]).mean() > 0.9  # and right where it spreads
    np.testing.assert_array_equal(dense[sparse != 255], sparse[sparse != 255])


def test_point_survey_converges_and_its_error_shrinks_as_one_over_sqrt_n() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((300, 400), np.uint8)
    mask[:, 100:] = 1
    mask[150:, 250:] = 2
    mask[rng.random(mask.shape) < 0.05] = 255  # unannotated speckle, not scored
    legend = ClassLegend.from_encoding(MaskEncoding(EILAT, background_is_ignore=True))
    errors, ses = {}, {}
    for n in (25, 100, 400, 1600):
        survey = point_survey_cover(mask, legend, n, draws=300, seed=n)
        errors[n] = float(np.abs(survey.mean - survey.exact).max())
        ses[n] = survey.standard_error[:3]
    exact = point_survey_cover(mask, legend, 10, draws=2).exact
    np.testing.assert_allclose(exact[:3], [25.0, 56.25, 18.75], atol=0.5)
    assert errors[1600] < 0.5 and errors[1600] < errors[25]
    for small, large in ((25, 100), (100, 400), (400, 1600)):
        np.testing.assert_allclose(ses[small] / ses[large], 2.0, rtol=0.2)  # sqrt(4)
    stratified = point_survey_cover(mask, legend, 100, draws=300, method="stratified")
    assert stratified.points == 99  # a 9 x 11 grid in the mask's 3:4 aspect
    # Stratifying over a patchy mask is at least as precise as random points.
    assert (stratified.standard_error[:3] <= ses[100] * 1.1).all()
    assert stratified.rows()[1]["point_se"] > 0
