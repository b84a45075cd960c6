"""Pixels per cm: conversions, quadrat frames, geotransforms."""

from __future__ import annotations

import math

import pytest

from coral_core.ecology.roi import roi_from_margin
from coral_core.ecology.scale import (
    area_cm2,
    check_scale,
    length_cm,
    scale_from_geotransform,
    scale_from_quadrat,
)
from coral_core.formats.raster_io import GeoInfo


def test_conversions() -> None:
    assert length_cm(250, 20.0) == 12.5
    assert area_cm2(400, 20.0) == 1.0  # 20 x 20 px is one square centimetre
    assert area_cm2(2_000 * 2_000, 20.0) == 10_000.0  # a 1 m quadrat at 20 px/cm


def test_scale_from_a_one_metre_frame() -> None:
    # CRIOBE's 1 m x 1 m frame whose inside spans 2000 x 2000 px of a 2200 x 2200 photo
    roi = roi_from_margin(2200, 2200, 100)
    assert scale_from_quadrat(int(roi.sum()), 100) == pytest.approx(20.0)
    assert scale_from_quadrat(2000 * 1000, 100, 50) == pytest.approx(20.0)
    assert area_cm2(int(roi.sum()), scale_from_quadrat(int(roi.sum()), 100)) == pytest.approx(1e4)


def test_scale_from_a_metric_geotransform() -> None:
    geo = GeoInfo((500_000.0, 0.002, 0.0, 8_000_000.0, 0.0, -0.002), "EPSG:32706")
    assert scale_from_geotransform(geo) == pytest.approx(5.0)  # 2 mm pixels
    assert scale_from_geotransform(geo, metres_per_unit=0.01) == pytest.approx(500.0)
    with pytest.raises(ValueError, match="rotated"):
        scale_from_geotransform(GeoInfo((0, 0.002, 0.001, 0, 0, -0.002)))
    with pytest.raises(ValueError, match="not square"):
        scale_from_geotransform(GeoInfo((0, 0.002, 0, 0, 0, -0.004)))


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "ten"])
def test_bad_scales_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="pixels per cm"):
        check_scale(bad)


def test_bad_quadrats_are_refused() -> None:
    with pytest.raises(ValueError, match="positive number of cm"):
        scale_from_quadrat(100, 0)
    with pytest.raises(ValueError, match="no pixel"):
        scale_from_quadrat(0, 100)
