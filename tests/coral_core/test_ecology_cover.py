"""Percent cover on constructed masks equals the exact pixel fractions."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.ecology.cover import CoverTable, image_cover, value_counts
from coral_core.ecology.legend import ClassLegend
from coral_core.ecology.roi import margin_pixels, roi_edge, roi_from_margin, roi_from_polygon
from coral_core.errors import CoralsegError
from coral_core.labels.taxonomy import EILAT, FAMILIES, MaskEncoding

IGNORE = 255


def eilat_legend() -> ClassLegend:
    return ClassLegend.from_encoding(MaskEncoding(EILAT, background_is_ignore=True))


def test_cover_is_the_pixel_fraction_of_the_annotated_area() -> None:
    legend = eilat_legend()
    mask = np.full((10, 10), IGNORE, dtype=np.uint8)
    mask.flat[:30] = legend.values[legend.names.index("Acropora")]
    mask.flat[30:80] = legend.values[legend.names.index("Bare-subst.")]
    cover = image_cover(mask, legend)
    percent = cover.as_dict()
    assert percent["Acropora"] == 100 * 30 / 80
    assert percent["Bare-subst."] == 100 * 50 / 80
    assert sum(percent.values()) == pytest.approx(100.0)
    assert cover.annotated_pixels == 80
    assert cover.roi_pixels == 100
    assert cover.annotated_fraction == 0.8
    assert cover.pixels.sum() == 80 and cover.pixels.dtype == np.int64


def test_random_masks_match_independent_counts() -> None:
    legend = eilat_legend()
    rng = np.random.default_rng(3)
    values = np.array([*legend.values, IGNORE])
    for _ in range(5):
        mask = rng.choice(values, size=(37, 53), p=rng.dirichlet(np.ones(len(values)))).astype(
            np.uint8
        )
        cover = image_cover(mask, legend)
        annotated = np.count_nonzero(mask != IGNORE)
        for name, value in zip(legend.names, legend.values, strict=True):
            expected = 100.0 * np.count_nonzero(mask == value) / annotated
            assert cover.as_dict()[name] == pytest.approx(expected, rel=1e-12)
        assert cover.annotated_fraction == annotated / mask.size


def test_background_is_a_class_or_excluded_explicitly() -> None:
    encoding = MaskEncoding(FAMILIES)  # 0 = background, 1..7 = classes, 255 = ignore
    mask = np.zeros((4, 5), dtype=np.uint8)  # 20 px: 10 background, 5 Porites, 5 ignore
    mask[2, :] = encoding.value_of("Porites")
    mask[3, :] = IGNORE
    with_background = image_cover(mask, ClassLegend.from_encoding(encoding, "class"))
    assert with_background.classes[0] == "background"
    assert with_background.as_dict()["background"] == pytest.approx(100 * 10 / 15)
    assert with_background.as_dict()["Porites"] == pytest.approx(100 * 5 / 15)
    assert with_background.annotated_fraction == 15 / 20
    without = image_cover(mask, ClassLegend.from_encoding(encoding, "ignore"))
    assert "background" not in without.classes
    assert without.as_dict()["Porites"] == 100.0
    assert without.annotated_fraction == 5 / 20


def test_nothing_annotated_gives_nan_cover_and_empty_cells() -> None:
    legend = eilat_legend()
    cover = image_cover(np.full((3, 3), IGNORE, dtype=np.uint8), legend)
    assert np.isnan(cover.cover_percent).all()
    assert cover.annotated_fraction == 0.0
    table = CoverTable.from_covers(["empty"], [cover])
    assert {row["cover_percent"] for row in table.rows()} == {""}


def test_unknown_values_are_refused_with_the_values_named() -> None:
    mask = np.zeros((3, 3), dtype=np.uint8)
    mask[0, 0] = 17
    with pytest.raises(CoralsegError, match=r"reef\.png has pixel values 17 .*taxonomy"):
        image_cover(mask, eilat_legend(), where="reef.png")


def test_sixteen_bit_masks_and_bad_arrays() -> None:
    legend = ClassLegend(("a", "b"), (1000, 2000), (True, False), ((1, 2, 3), (4, 5, 6)), (0,))
    mask = np.zeros((4, 4), dtype=np.uint16)
    mask[0] = 1000
    mask[1:3] = 2000
    assert image_cover(mask, legend).as_dict() == {"a": 100 * 4 / 12, "b": 100 * 8 / 12}
    with pytest.raises(ValueError, match="uint8 or uint16"):
        value_counts(np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        value_counts(np.zeros((2, 2, 3), dtype=np.uint8))


def test_margin_roi_counts_only_inside_the_frame() -> None:
    legend = eilat_legend()
    mask = np.full((20, 30), legend.values[0], dtype=np.uint8)
    mask[5:15, 5:25] = legend.values[1]  # exactly the inside of a 5 px margin
    roi = roi_from_margin(20, 30, 5)
    cover = image_cover(mask, legend, roi)
    assert cover.roi_pixels == 10 * 20
    assert cover.as_dict()["Stylophora"] == 100.0
    assert margin_pixels(200, 300, 0.05, "fraction") == (10, 15)
    assert roi_from_margin(200, 300, 0.05, "fraction").sum() == 180 * 270
    with pytest.raises(ValueError, match="leaves nothing"):
        roi_from_margin(20, 30, 10)
    with pytest.raises(ValueError, match=r"below 0\.5"):
        roi_from_margin(20, 30, 0.5, "fraction")


def test_polygon_roi_takes_pixels_whose_centre_is_inside() -> None:
    roi = roi_from_polygon(10, 10, [[2, 2], [8, 2], [8, 6], [2, 6]])
    expected = np.zeros((10, 10), dtype=bool)
    expected[2:6, 2:8] = True
    np.testing.assert_array_equal(roi, expected)
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[2:4, 2:8] = 1
    cover = image_cover(mask, eilat_legend(), roi)
    assert cover.as_dict()["Stylophora"] == 50.0 and cover.roi_pixels == 24
    with pytest.raises(ValueError, match="holds no pixel"):
        roi_from_polygon(10, 10, [[20, 20], [30, 20], [30, 30]])


def test_roi_edge_is_the_inner_border() -> None:
    roi = roi_from_margin(6, 6, 1)
    edge = roi_edge(roi)
    assert edge.sum() == 16 - 4  # the 4x4 inside minus its 2x2 core
    assert not edge[~roi].any()


def test_cover_table_rows_and_class_alignment() -> None:
    legend = eilat_legend()
    a = np.zeros((2, 2), dtype=np.uint8)
    b = np.array([[1, 1], [255, 0]], dtype=np.uint8)
    table = CoverTable.from_covers(["a", "b"], [image_cover(a, legend), image_cover(b, legend)])
    rows = table.rows({"a": {"site": "X"}}, ["site"], pixels_per_cm={"a": 2.0})
    assert len(rows) == 2 * len(legend.names)
    first = rows[0]
    assert list(first) == [
        "image",
        "site",
        "class",
        "pixels",
        "cover_percent",
        "annotated_fraction",
        "annotated_pixels",
        "roi_pixels",
        "area_cm2",
    ]
    assert first["site"] == "X" and first["area_cm2"] == 4 / 4
    b_styl = next(r for r in rows if r["image"] == "b" and r["class"] == "Stylophora")
    assert (
        b_styl["cover_percent"] == 100 * 2 / 3 and b_styl["site"] == "" and b_styl["area_cm2"] == ""
    )
    wider = table.with_classes(("extra", *reversed(table.classes)))
    assert wider.pixels[:, 0].sum() == 0
    np.testing.assert_array_equal(wider.pixels[:, 1:], table.pixels[:, ::-1])
    with pytest.raises(ValueError, match="dropped"):
        table.with_classes(table.classes[1:])
    with pytest.raises(ValueError, match="unique"):
        CoverTable(("a", "a"), ("x",), np.zeros((2, 1)), np.zeros(2))


def test_classes_valued_above_255_have_no_pixels_in_8_bit_masks() -> None:
    legend = ClassLegend(("a", "b"), (1, 300), (True, True), ((1, 2, 3), (4, 5, 6)))
    cover = image_cover(np.ones((2, 3), dtype=np.uint8), legend)
    assert cover.pixels.tolist() == [6, 0]
