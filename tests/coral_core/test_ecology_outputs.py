"""Tidy CSVs, GeoJSON of colonies and the plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.ecology.colonies import colonies_from_labels
from coral_core.ecology.geojson import (
    GeoJSONWriter,
    colony_features,
    colony_geometry,
    feature_collection,
    pixel_to_map,
    write_geojson,
)
from coral_core.ecology.legend import ClassLegend
from coral_core.ecology.plots import plot_colony_sizes, plot_cover_agreement, plot_cover_by_group
from coral_core.ecology.tables import write_csv
from coral_core.formats.raster_io import GeoInfo
from coral_core.labels.taxonomy import EILAT, MaskEncoding

LEGEND = ClassLegend.from_encoding(MaskEncoding(EILAT, background_is_ignore=True))
ACROPORA = EILAT.classes.index("Acropora")
BARE = EILAT.classes.index("Bare-subst.")


def ring_mask() -> np.ndarray:
    mask = np.full((40, 40), BARE, dtype=np.uint8)
    mask[5:25, 10:30] = ACROPORA
    mask[10:15, 15:20] = BARE  # a hole
    mask[30:35, 2:6] = ACROPORA
    return mask


def test_csv_round_trip_with_missing_cells(tmp_path: Path) -> None:
    rows = [
        {"image": "a, b", "class": "Acropora", "cover_percent": 1 / 3, "flag": True},
        {"image": "c", "class": "Porites", "cover_percent": float("nan")},
    ]
    path = write_csv(tmp_path / "sub" / "t.csv", rows)
    with path.open(newline="") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["image", "class", "cover_percent", "flag"]
    assert read[0]["image"] == "a, b" and float(read[0]["cover_percent"]) == 1 / 3
    assert read[0]["flag"] == "1" and read[1]["cover_percent"] == "" and read[1]["flag"] == ""
    header_only = write_csv(tmp_path / "empty.csv", [], ["image", "class"])
    assert header_only.read_text() == "image,class\n"
    assert not list(tmp_path.glob("sub/.*tmp"))


def test_geojson_polygons_with_holes_closed_and_oriented(tmp_path: Path) -> None:
    colonies = colonies_from_labels(ring_mask(), LEGEND, outline=True)
    features = colony_features("reef", colonies, fields={"site": "A"}, field_names=["site"])
    assert [f["properties"]["area_px"] for f in features] == [400 - 25, 20]
    geometry = features[0]["geometry"]
    assert geometry["type"] == "Polygon" and len(geometry["coordinates"]) == 2
    for index, ring in enumerate(geometry["coordinates"]):
        assert ring[0] == ring[-1]
        xy = np.array(ring[:-1])
        area = 0.5 * (
            np.dot(xy[:, 0], np.roll(xy[:, 1], -1)) - np.dot(np.roll(xy[:, 0], -1), xy[:, 1])
        )
        assert (area > 0) == (index == 0)  # exterior counter-clockwise, hole clockwise
    exterior = np.array(geometry["coordinates"][0])
    assert exterior[:, 0].min() == pytest.approx(10.25) and exterior[:, 1].max() == pytest.approx(
        24.75
    )
    assert features[0]["properties"]["site"] == "A"
    collection = feature_collection(features)
    assert "crs" not in collection
    path = write_geojson(tmp_path / "c.geojson", collection)
    assert json.loads(path.read_text())["features"][1]["properties"]["class"] == "Acropora"


def test_map_coordinates_through_the_geotransform() -> None:
    geo = GeoInfo((600_000.0, 0.01, 0.0, 8_050_000.0, 0.0, -0.01), "EPSG:32706")
    np.testing.assert_allclose(
        pixel_to_map(np.array([[0, 0], [100, 50]]), geo),
        [[600_000, 8_050_000], [600_001, 8_049_999.5]],
    )
    (colony, _) = colonies_from_labels(ring_mask(), LEGEND, outline=True)
    geometry = colony_geometry(colony, geo)
    xs = [p[0] for p in geometry["coordinates"][0]]
    assert min(xs) == pytest.approx(600_000 + 10.25 * 0.01)
    collection = feature_collection([], geo.crs)
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32706"


def test_streaming_writer_and_points_without_outline(tmp_path: Path) -> None:
    colonies = colonies_from_labels(ring_mask(), LEGEND)  # no outlines: centroids
    path = tmp_path / "s.geojson"
    with GeoJSONWriter(path) as writer:
        writer.add(colony_features("a", colonies), "EPSG:32706")
        writer.add(colony_features("b", colonies), "EPSG:32706")
        assert not path.exists()
    data = json.loads(path.read_text())
    assert len(data["features"]) == 4 and writer.count == 4
    assert data["features"][0]["geometry"]["type"] == "Point"
    assert data["crs"]["properties"]["name"].endswith("32706")
    with GeoJSONWriter(tmp_path / "m.geojson") as mixed:
        mixed.add(colony_features("a", colonies), None)
        mixed.add(colony_features("b", colonies), "EPSG:4326")
    assert mixed.mixed and "crs" not in json.loads((tmp_path / "m.geojson").read_text())
    with GeoJSONWriter(tmp_path / "u.geojson") as unknown:
        unknown.add(colony_features("a", colonies), "")
    assert not unknown.mixed and unknown.crs is None
    assert "crs" not in json.loads((tmp_path / "u.geojson").read_text())
    with pytest.raises(RuntimeError), GeoJSONWriter(tmp_path / "failed.geojson") as failing:
        failing.add(colony_features("a", colonies))
        raise RuntimeError("interrupted")
    assert not (tmp_path / "failed.geojson").exists()
    assert not list(tmp_path.glob(".*tmp"))


def assert_png_with_content(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


def test_plots(tmp_path: Path) -> None:
    names = LEGEND.names
    rng = np.random.default_rng(0)
    mean = rng.dirichlet(np.ones(len(names)), size=3) * 100
    cover = plot_cover_by_group(
        ["A / 2019", "A / 2020", "B / 2019"], names, mean, LEGEND.colors, tmp_path / "c.png"
    )
    assert_png_with_content(cover)
    sizes = plot_colony_sizes(
        {
            "Acropora": rng.lognormal(5, 1, 50),
            "Stylophora": np.array([]),
            "Faviidae": np.array([3.0]),
        },
        {n: LEGEND.color_of(n) for n in names},
        tmp_path / "s.png",
        unit="cm²",
    )
    assert_png_with_content(sizes)
    truth = rng.uniform(0, 60, size=(12, len(names)))
    agreement = plot_cover_agreement(
        truth, truth + rng.normal(0, 3, truth.shape), names, LEGEND.colors, tmp_path / "a.png"
    )
    assert_png_with_content(agreement)
    with pytest.raises(ValueError, match="no colony classes"):
        plot_colony_sizes({}, {}, tmp_path / "none.png")
