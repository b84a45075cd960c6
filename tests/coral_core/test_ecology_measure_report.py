"""Measuring a mask source and writing its report: the numbers in the files are the masks'."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.ecology.image_fields import image_fields
from coral_core.ecology.measure import CoverSettings, measure_source
from coral_core.ecology.report import summary_lines, write_cover_report, write_point_survey
from coral_core.ecology.sources import locate_masks
from coral_core.errors import CoralsegError
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding, write_class_files

FAM = MaskEncoding(FAMILIES)
ACROPORA = FAM.value_of("Acropora")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def source(tmp_path: Path):
    folder = tmp_path / "masks"
    folder.mkdir()
    for index, name in enumerate(("TEM_2019_q1", "TIA_2020_q1")):
        mask = np.zeros((20, 30), dtype=np.uint8)
        mask[2 : 6 + index, 2:12] = ACROPORA  # 40 and 50 pixels
        mask[12:16, 20:24] = ACROPORA  # a second colony of 16 pixels
        Image.fromarray(mask).save(folder / f"{name}.png")
    write_class_files(FAM, folder)
    return locate_masks(folder)


def test_measure_and_report_cover_colonies_and_groups(source, tmp_path: Path) -> None:
    described = image_fields([source], [i.name for i in source.items], "<site>_<year>_*")
    assert described.group_by == ["site", "year"] and described.notes == []
    measured = measure_source(
        source, CoverSettings(pixels_per_cm=2.0), True, None, described.fields,
        described.field_names,
    )  # fmt: skip
    assert [len(c) for c in measured.colonies.values()] == [2, 2]
    assert measured.pixels_per_cm == {"TEM_2019_q1": 2.0, "TIA_2020_q1": 2.0}
    out = tmp_path / "report"
    out.mkdir()
    report = write_cover_report(
        out, measured, described.fields, described.field_names, described.group_by
    )
    assert {p.name for p in report.written} >= {"cover_per_image.csv", "colonies.csv"}
    pixels = {
        r["image"]: int(r["pixels"])
        for r in _rows(out / "cover_per_image.csv")
        if r["class"] == "Acropora"
    }
    assert pixels == {"TEM_2019_q1": 56, "TIA_2020_q1": 66}
    areas = sorted(float(r["area_cm2"]) for r in _rows(out / "colonies.csv"))
    assert areas == [4.0, 4.0, 10.0, 12.5]
    assert {r["group"] for r in _rows(out / "cover_per_group.csv")} == {"TEM / 2019", "TIA / 2020"}
    assert "  colonies: 4" in summary_lines(measured)
    survey = write_point_survey(out, source, CoverSettings(), [20], "random", draws=3)
    assert {r["image"] for r in _rows(survey)} == {"TEM_2019_q1", "TIA_2020_q1"}


def test_settings_that_contradict_each_other_name_both(source) -> None:
    with pytest.raises(CoralsegError) as raised:
        CoverSettings(pixels_per_cm=2.0, quadrat_cm=(100.0, 100.0))
    assert raised.value.settings == ("pixels_per_cm", "quadrat_cm")
    with pytest.raises(CoralsegError) as raised:
        CoverSettings(roi_margin=3, roi_polygon=np.zeros((3, 2)))
    assert raised.value.settings == ("roi_margin", "roi_polygon")
    with pytest.raises(CoralsegError) as raised:
        measure_source(source, CoverSettings(colonies_from="instances"))
    assert raised.value.settings == ("colonies_from",)
    with pytest.raises(CoralsegError) as raised:
        image_fields([source], ["TEM_2019_q1"], "<site>_*", group_by=["depth"])
    assert raised.value.settings == ("group_by",) and "no field depth" in str(raised.value)
    with pytest.raises(CoralsegError, match="the images have no fields; give a filename") as raised:
        image_fields([source], ["TEM_2019_q1"], None, group_by=["year"])
    assert raised.value.settings == ("groups",)  # what is missing is where fields come from
