"""Label rasters (coral_core.formats.label_rasters): the writer is atomic and refuses what its
format cannot hold; what it writes as PNG or GeoTIFF reads back value for value."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from coral_core.errors import CoralsegError
from coral_core.formats import label_rasters
from coral_core.formats.label_rasters import LabelRasterWriter, read_label_mask
from coral_core.formats.raster_io import GeoInfo, open_image, photo_geo

RNG = np.random.default_rng(0)
GEO = GeoInfo((600_000.0, 0.005, 0.0, 8_050_000.0, 0.0, -0.005), "EPSG:32706")


def _labels(dtype) -> np.ndarray:
    mask = np.zeros((12, 20), dtype=dtype)
    mask[2:6, 3:9] = 3
    mask[7:11, 10:18] = 255 if dtype == np.uint8 else 300
    return mask


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_masks_read_back_their_values(tmp_path: Path, dtype) -> None:
    mask = _labels(dtype)
    Image.fromarray(mask).save(tmp_path / "m.png")
    read, geo = read_label_mask(tmp_path / "m.png")
    assert read.dtype == dtype and np.array_equal(read, mask) and geo is None


def test_a_palette_png_gives_its_indices_not_colours(tmp_path: Path) -> None:
    image = Image.fromarray(_labels(np.uint8), mode="P")
    image.putpalette([200, 10, 10] * 256)
    image.save(tmp_path / "p.png")
    read, _ = read_label_mask(tmp_path / "p.png")
    assert np.array_equal(read, _labels(np.uint8))


def test_a_geotiff_mask_reads_back_with_its_georeference(tmp_path: Path) -> None:
    mask = _labels(np.uint8)
    with LabelRasterWriter(tmp_path / "m.tif", *mask.shape, GEO) as writer:
        writer.write((0, 0, mask.shape[1], mask.shape[0]), mask)
    read, read_geo = read_label_mask(tmp_path / "m.tif")
    assert np.array_equal(read, mask)
    assert read_geo == GEO
    assert photo_geo(tmp_path / "m.tif") == GEO
    assert photo_geo(tmp_path / "missing.tif") is None
    with open_image(tmp_path / "m.tif") as photo:  # the photo reader: the same georeference
        assert photo.geo == GEO


def test_a_crs_without_a_geotransform_is_no_georeference(tmp_path: Path) -> None:
    """GDAL reports the identity for a TIFF without a geotransform; its 1-unit pixels would
    otherwise become a scale (1 m per pixel) and an alignment."""
    mask = _labels(np.uint8)
    with rasterio.open(
        tmp_path / "crs_only.tif", "w", driver="GTiff", height=12, width=20, count=1,
        dtype="uint8", crs="EPSG:32706",
    ) as dataset:  # fmt: skip
        dataset.write(mask, 1)
    assert read_label_mask(tmp_path / "crs_only.tif")[1] is None
    assert photo_geo(tmp_path / "crs_only.tif") is None


@pytest.mark.parametrize(
    ("bands", "says"),
    [(3, "has 3 bands; label masks have one band"), (0, "cannot read the mask")],
)
def test_a_tiff_that_is_not_one_band_of_labels_is_refused(tmp_path: Path, bands, says) -> None:
    path = tmp_path / "bad.tif"
    if bands:
        with rasterio.open(
            path, "w", driver="GTiff", height=4, width=4, count=bands, dtype="uint8"
        ) as dataset:
            dataset.write(np.zeros((bands, 4, 4), np.uint8))
    else:
        path.write_bytes(b"II*\x00 not a tiff")
    with pytest.raises(CoralsegError, match=says):
        read_label_mask(path)


@pytest.mark.parametrize(
    ("write", "says"),
    [
        (lambda p: Image.new("RGB", (4, 4)).save(p), "is a RGB image"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n broken"), "cannot read the mask"),
    ],
)
def test_what_is_not_a_label_mask_is_refused_with_a_sentence(tmp_path: Path, write, says) -> None:
    path = tmp_path / "bad.png"
    write(path)
    with pytest.raises(CoralsegError, match=says):
        read_label_mask(path)


# --- LabelRasterWriter ------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_writer_is_atomic(tmp_path, suffix) -> None:
    target = tmp_path / f"labels{suffix}"
    with pytest.raises(RuntimeError), LabelRasterWriter(target, 20, 30) as writer:
        writer.write((0, 0, 10, 10), np.ones((10, 10), np.uint8))
        assert not target.exists()
        raise RuntimeError("inference failed")
    assert os.listdir(tmp_path) == []

    target.write_bytes(b"previous result")
    with pytest.raises(RuntimeError), LabelRasterWriter(target, 20, 30):
        raise RuntimeError("inference failed")
    assert os.listdir(tmp_path) == [target.name]
    assert target.read_bytes() == b"previous result"

    with LabelRasterWriter(target, 20, 30) as writer:
        writer.write((5, 5, 30, 20), np.full((15, 25), 7, np.uint8))
    assert os.listdir(tmp_path) == [target.name]
    with open_image(target) as labels:
        values = labels.read()[..., 0]
    assert (values[5:, 5:] == 7).all() and values[:5].max() == 0 and values[:, :5].max() == 0


def test_png_writer_stores_the_palette_and_refuses_what_png_cannot_hold(tmp_path) -> None:
    labels = RNG.integers(0, 3, (12, 16), dtype=np.int64)
    with LabelRasterWriter(tmp_path / "l.png", 12, 16, palette={2: (9, 99, 199)}) as writer:
        writer.write((0, 0, 16, 12), labels)
    with Image.open(tmp_path / "l.png") as image:
        assert image.mode == "P"
        np.testing.assert_array_equal(np.asarray(image), labels)
        assert image.getpalette()[6:9] == [9, 99, 199]
    with pytest.raises(CoralsegError, match=r"too large for PNG.*use a \.tif"):
        LabelRasterWriter(tmp_path / "big.png", 100, 20_001)
    with pytest.raises(CoralsegError, match="georeferencing"):
        LabelRasterWriter(tmp_path / "geo.png", 10, 10, geo=GEO)
    with pytest.raises(CoralsegError, match=r"use a \.tif/\.tiff"):
        LabelRasterWriter(tmp_path / "l.jpg", 10, 10)
    with pytest.raises(CoralsegError, match="does not exist"):
        LabelRasterWriter(tmp_path / "nowhere" / "l.tif", 10, 10)
    assert sorted(os.listdir(tmp_path)) == ["l.png"]


def test_writer_rejects_bad_windows_and_values(tmp_path) -> None:
    with LabelRasterWriter(tmp_path / "l.tif", 10, 10) as writer:
        with pytest.raises(ValueError, match="outside"):
            writer.write((5, 5, 11, 10), np.zeros((5, 6), np.uint8))
        with pytest.raises(ValueError, match="shape"):
            writer.write((0, 0, 5, 5), np.zeros((5, 4), np.uint8))
        with pytest.raises(ValueError, match=r"0\.\.255"):
            writer.write((0, 0, 2, 2), np.full((2, 2), 256))
        with pytest.raises(ValueError, match="dtype float"):
            writer.write((0, 0, 2, 2), np.zeros((2, 2)))


def test_bigtiff_only_when_classic_offsets_could_overflow() -> None:
    assert not label_rasters._needs_bigtiff(40_000, 40_000, 1)  # 1.6 GB of labels
    assert label_rasters._needs_bigtiff(70_000, 70_000, 1)  # 4.9 GB
    assert label_rasters._needs_bigtiff(40_000, 40_000, 3)
