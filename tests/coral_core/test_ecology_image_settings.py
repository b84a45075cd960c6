"""Settings as written (margins, polygons, quadrat sizes, scale and ROI CSVs) and the scale of
a georeferenced raster: each parsed value, and a sentence naming the setting when wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coral_core.ecology.image_settings import parse_scale, read_roi_csv
from coral_core.ecology.roi import parse_roi_margin, parse_roi_polygon
from coral_core.ecology.scale import georeferenced_scale, parse_quadrat_size
from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo


def test_margins_polygons_and_quadrat_sizes_as_written() -> None:
    assert parse_roi_margin("40") == (40.0, "px")
    assert parse_roi_margin(" 5% ") == (0.05, "fraction")
    polygon = parse_roi_polygon("1,2 3,4;5,6")
    assert polygon.dtype == np.float64 and polygon.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert parse_quadrat_size("100") == (100.0, 100.0)
    assert parse_quadrat_size("100×50") == (100.0, 50.0)


@pytest.mark.parametrize(
    ("parse", "text", "setting"),
    [
        (parse_roi_margin, "50%", "roi_margin"),
        (parse_roi_margin, "-1", "roi_margin"),
        (parse_roi_polygon, "1,2 3,4", "roi_polygon"),
        (parse_quadrat_size, "1x2x3", "quadrat_cm"),
        (parse_quadrat_size, "0", "quadrat_cm"),
    ],
)
def test_malformed_settings_name_the_setting(parse, text, setting) -> None:
    with pytest.raises(CoralsegError) as raised:
        parse(text)
    assert raised.value.settings == (setting,) and repr(text) in str(raised.value)


def test_scale_is_a_number_or_a_csv_per_image(tmp_path: Path) -> None:
    assert parse_scale("18.5", ["a"]) == (18.5, None)
    csv = tmp_path / "scale.csv"
    csv.write_text("filename,pixels_per_cm\na.jpg,10\nb.jpg,\n")
    assert parse_scale(str(csv), ["a", "b", "c"]) == (None, {"a": 10.0})
    with pytest.raises(CoralsegError) as raised:
        parse_scale("-3", ["a"])
    assert raised.value.settings == ("pixels_per_cm",)
    csv.write_text("image,pixels_per_cm\na,-2\n")
    with pytest.raises(CoralsegError, match="positive number"):
        parse_scale(str(csv), ["a"])


def test_roi_csv_gives_polygons_and_the_images_without_one(tmp_path: Path) -> None:
    csv = tmp_path / "rois.csv"
    csv.write_text('image,roi_polygon\na.jpg,"0,0 10,0 10,10"\nb.jpg,\n')
    polygons, missing = read_roi_csv(csv, ["a", "b", "c"])
    assert list(polygons) == ["a"] and polygons["a"].shape == (3, 2)
    assert sorted(missing) == ["b", "c"]
    csv.write_text("image,polygon\na,1\n")
    with pytest.raises(CoralsegError, match="needs a column 'roi_polygon'"):
        read_roi_csv(csv, ["a"])


def test_georeferenced_scale_uses_the_crs_units() -> None:
    utm = GeoInfo((500_000.0, 0.005, 0.0, 8_000_000.0, 0.0, -0.005), "EPSG:32706")
    assert georeferenced_scale(utm) == pytest.approx(2.0)
    feet = GeoInfo((0.0, 0.01, 0.0, 0.0, 0.0, -0.01), "EPSG:2263")  # US survey feet
    assert georeferenced_scale(feet) == pytest.approx(1 / (0.01 * 0.3048006096 * 100))
    for geo, says in (
        (GeoInfo(utm.geotransform, "EPSG:4326"), "geographic CRS"),
        (GeoInfo(utm.geotransform, None), "no CRS"),
    ):
        with pytest.raises(CoralsegError, match=says) as raised:
            georeferenced_scale(geo)
        assert raised.value.settings == ("pixels_per_cm",)
