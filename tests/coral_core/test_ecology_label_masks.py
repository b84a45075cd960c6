"""Label mask files: what is written as a PNG or GeoTIFF reads back value for value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.ecology.label_masks import photo_geo, read_label_mask
from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo, LabelRasterWriter


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
    geo = GeoInfo((600_000.0, 0.005, 0.0, 8_050_000.0, 0.0, -0.005), "EPSG:32706")
    with LabelRasterWriter(tmp_path / "m.tif", *mask.shape, geo) as writer:
        writer.write((0, 0, mask.shape[1], mask.shape[0]), mask)
    read, read_geo = read_label_mask(tmp_path / "m.tif")
    assert np.array_equal(read, mask)
    assert read_geo == geo
    assert photo_geo(tmp_path / "m.tif") == geo
    assert photo_geo(tmp_path / "missing.tif") is None


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
