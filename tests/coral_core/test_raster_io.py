"""Round trips of coral_core.formats.raster_io on small constructed files, plus one TIFF wider than
32,767 px read window by window. Expected pixels come from Pillow's own decoding or from the
arrays the files were made of."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from PIL import Image, ImageOps
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

from coral_core.errors import CoralsegError
from coral_core.formats import raster_io
from coral_core.formats.label_rasters import LabelRasterWriter
from coral_core.formats.raster_io import GeoInfo, Window, open_image
from tests.raster_fixtures import synthetic_rgb, write_test_tiff

RNG = np.random.default_rng(0)
GEO = GeoInfo((500_000.0, 0.01, 0.0, 3_300_000.0, 0.0, -0.01), "EPSG:32636")
WINDOWS = [
    (0, 0, 7, 5),
    (3, 2, 11, 9),
    (-4, -3, 6, 4),  # over the top-left corner
    (10, 8, 25, 20),  # over the bottom-right corner
    (-2, 1, 30, 3),  # wider than the image
    (40, 40, 45, 44),  # entirely outside
    (5, 5, 5, 9),  # empty
]


def _padded(full: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """What reading ``window`` must give: ``full``'s pixels inside, zeros outside."""
    x0, y0, x1, y1 = window
    out = np.zeros((y1 - y0, x1 - x0, *full.shape[2:]), full.dtype)
    h, w = full.shape[:2]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if ix1 > ix0 and iy1 > iy0:
        out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = full[iy0:iy1, ix0:ix1]
    return out


def _write_tiff(path: Path, bands: np.ndarray, colormap: dict | None = None, **profile) -> Path:
    """A GTiff from CxHxW ``bands`` through rasterio; ``profile`` adds creation options."""
    count, height, width = bands.shape
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": bands.dtype.name,
        **profile,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(bands)
            if colormap:
                dataset.write_colormap(1, colormap)
    return path


def _pillow_view(path: Path) -> np.ndarray:
    """The image as Pillow shows it after EXIF transposition, as RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def tiles(height: int, width: int, tile: int, overlap: int = 0) -> list[Window]:
    """Windows of ``tile x tile`` (smaller only where the image is) covering an image, the
    last of a row or column moved back to end at the image's edge."""

    def starts(size: int) -> list[int]:
        return [0] if size <= tile else [*range(0, size - tile, tile - overlap), size - tile]

    return [
        (x0, y0, min(x0 + tile, width), min(y0 + tile, height))
        for y0 in starts(height)
        for x0 in starts(width)
    ]


# --- ordinary formats through Pillow ----------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_viewers_do(tmp_path, orientation) -> None:
    stored = RNG.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif)
    with open_image(path) as source:
        shown = source.read()
        assert (source.height, source.width) == shown.shape[:2]
        assert (source.height, source.width) == ((8, 5) if orientation >= 5 else (5, 8))
        np.testing.assert_array_equal(shown, _pillow_view(path))
        for window in WINDOWS:
            np.testing.assert_array_equal(source.read(window), _padded(shown, window))
    assert raster_io.photo_sizes(path) == ((8, 5), (source.width, source.height))


def test_photo_sizes_of_what_is_not_a_photo(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    assert raster_io.photo_sizes(tmp_path / "notes.txt") is None
    assert raster_io.photo_sizes(tmp_path / "missing.jpg") is None


def test_jpeg_with_exif_rotation(tmp_path) -> None:
    path = tmp_path / "quadrat.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held upright: shown rotated 90 degrees clockwise
    stored = np.zeros((48, 64, 3), np.uint8)
    stored[:16, :16] = (255, 0, 0)  # red block top-left as stored
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    with open_image(path) as source:
        assert (source.height, source.width) == (64, 48)
        shown = source.read()
        np.testing.assert_array_equal(shown, _pillow_view(path))
        assert shown[4, -4, 0] > 200 and shown[4, -4, 1] < 50  # red is now top-right
        assert source.geo is None and not source.has_mask


def test_grayscale_png_becomes_rgb(tmp_path) -> None:
    gray = RNG.integers(0, 256, (9, 13), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    with open_image(tmp_path / "gray.png") as source:
        np.testing.assert_array_equal(source.read(), np.repeat(gray[..., None], 3, axis=2))
        assert source.valid_mask().all() and not source.has_mask


def test_16bit_pngs_keep_their_high_byte(tmp_path) -> None:
    gray = RNG.integers(0, 65536, (6, 7), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "gray16.png"), gray)
    rgb = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[..., ::-1])  # OpenCV writes BGR
    with open_image(tmp_path / "gray16.png") as source:
        expected = (gray >> 8).astype(np.uint8)
        np.testing.assert_array_equal(source.read(), np.repeat(expected[..., None], 3, axis=2))
    with open_image(tmp_path / "rgb16.png") as source:
        np.testing.assert_array_equal(source.read(), (rgb >> 8).astype(np.uint8))


def test_alpha_is_dropped_and_reported_in_the_valid_mask(tmp_path) -> None:
    rgba = RNG.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[2:5, 3:9, 3] = 0
    rgba[7, 7, 3] = 1  # barely visible still counts as valid
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., [0, 3]]).save(tmp_path / "la.png")
    with open_image(tmp_path / "rgba.png") as source:
        assert source.has_mask
        np.testing.assert_array_equal(source.read(), rgba[..., :3])
        np.testing.assert_array_equal(source.valid_mask(), rgba[..., 3] != 0)
        for window in WINDOWS:
            np.testing.assert_array_equal(
                source.valid_mask(window), _padded(rgba[..., 3] != 0, window)
            )
    with open_image(tmp_path / "la.png") as source:
        np.testing.assert_array_equal(source.read(), np.repeat(rgba[..., :1], 3, axis=2))
        np.testing.assert_array_equal(source.valid_mask(), rgba[..., 3] != 0)


def test_palette_png_with_transparency(tmp_path) -> None:
    indices = RNG.integers(0, 4, (8, 8), dtype=np.uint8)
    colors = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255], [10, 200, 30]], np.uint8)
    image = Image.fromarray(indices).convert("P")  # keeps the values as indices
    image.putpalette(colors.ravel().tolist())
    image.save(tmp_path / "palette.png", transparency=0)
    with open_image(tmp_path / "palette.png") as source:
        np.testing.assert_array_equal(source.read(), colors[indices])
        np.testing.assert_array_equal(source.valid_mask(), indices != 0)


# --- TIFF through GDAL ------------------------------------------------------------------


def test_tiff_windows_equal_slices_of_the_whole_image(tmp_path) -> None:
    rgb = RNG.integers(0, 256, (3, 21, 19), dtype=np.uint8)
    path = _write_tiff(tmp_path / "rgb.tif", rgb, tiled=True, blockxsize=16, blockysize=16)
    with open_image(path) as source:
        full = source.read()
        np.testing.assert_array_equal(full, np.moveaxis(rgb, 0, -1))
        for window in [*WINDOWS, *tiles(21, 19, 16, 4)]:
            np.testing.assert_array_equal(source.read(window), _padded(full, window))
        assert (
            source.valid_mask((-1, -1, 2, 2)).tolist() == [[False] * 3] + [[False, True, True]] * 2
        )


@pytest.mark.parametrize("orientation", [2, 6, 7, 8])
def test_tiff_orientation_tag_is_applied_window_by_window(tmp_path, orientation) -> None:
    stored = RNG.integers(0, 256, (11, 17, 3), dtype=np.uint8)
    path = tmp_path / "oriented.tif"
    Image.fromarray(stored).save(path, tiffinfo={274: orientation}, big_tiff=orientation == 6)
    with open_image(path) as source:
        shown = source.read()
        np.testing.assert_array_equal(shown, _pillow_view(path))
        for window in [*WINDOWS, *tiles(source.height, source.width, 8, 3)]:
            np.testing.assert_array_equal(source.read(window), _padded(shown, window))


def test_georeferenced_tiffs_ignore_the_orientation_tag(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(raster_io, "_tiff_orientation", lambda path: 6)
    bands = RNG.integers(0, 256, (3, 4, 9), dtype=np.uint8)
    plain = _write_tiff(tmp_path / "plain.tif", bands)
    geo = _write_tiff(
        tmp_path / "geo.tif", bands, crs=GEO.crs, transform=Affine.from_gdal(*GEO.geotransform)
    )
    with open_image(plain) as source:
        assert (source.height, source.width) == (9, 4)
    with open_image(geo) as source:
        assert (source.height, source.width) == (4, 9)


def test_16bit_and_12bit_tiffs_keep_their_8_most_significant_bits(tmp_path) -> None:
    rgb16 = RNG.integers(0, 65536, (3, 5, 6), dtype=np.uint16)
    rgb12 = RNG.integers(0, 4096, (3, 5, 6), dtype=np.uint16)
    _write_tiff(tmp_path / "rgb16.tif", rgb16, photometric="RGB")
    _write_tiff(tmp_path / "rgb12.tif", rgb12, nbits=12)
    with open_image(tmp_path / "rgb16.tif") as source:
        np.testing.assert_array_equal(source.read(), np.moveaxis(rgb16 >> 8, 0, -1))
    with open_image(tmp_path / "rgb12.tif") as source:
        np.testing.assert_array_equal(source.read(), np.moveaxis(rgb12 >> 4, 0, -1))


def test_1bit_tiff_is_stretched(tmp_path) -> None:
    bits = RNG.integers(0, 2, (6, 10), dtype=np.uint8).astype(bool)
    Image.fromarray(bits).save(tmp_path / "mask.tif")
    with open_image(tmp_path / "mask.tif") as source:
        np.testing.assert_array_equal(source.read()[..., 1], np.where(bits, 255, 0))


def test_four_band_tiffs_read_their_first_three_bands(tmp_path) -> None:
    bands = RNG.integers(1, 256, (4, 7, 9), dtype=np.uint8)
    bands[3, 0, :4] = 0
    rgbn = _write_tiff(tmp_path / "rgbn.tif", bands, photometric="RGB")
    rgba = _write_tiff(tmp_path / "rgba.tif", bands, photometric="RGB", alpha="YES")
    with open_image(rgbn) as source:  # near-infrared is data, not transparency
        np.testing.assert_array_equal(source.read(), np.moveaxis(bands[:3], 0, -1))
        assert not source.has_mask and source.valid_mask().all()
    with open_image(rgba) as source:
        np.testing.assert_array_equal(source.read(), np.moveaxis(bands[:3], 0, -1))
        assert source.has_mask
        np.testing.assert_array_equal(source.valid_mask(), bands[3] != 0)


def test_gray_and_palette_tiffs_become_rgb(tmp_path) -> None:
    gray = RNG.integers(0, 256, (1, 5, 8), dtype=np.uint8)
    _write_tiff(tmp_path / "gray.tif", gray)
    colors = {0: (0, 0, 0, 255), 1: (250, 10, 10, 255), 2: (20, 30, 240, 255)}
    indices = RNG.integers(0, 3, (1, 5, 8), dtype=np.uint8)
    _write_tiff(tmp_path / "palette.tif", indices, colormap=colors, photometric="PALETTE")
    with open_image(tmp_path / "gray.tif") as source:
        np.testing.assert_array_equal(source.read(), np.repeat(gray[0][..., None], 3, axis=2))
    with open_image(tmp_path / "palette.tif") as source:
        lut = np.array([colors[i][:3] for i in range(3)], np.uint8)
        np.testing.assert_array_equal(source.read(), lut[indices[0]])


def test_geotiff_georeferencing_is_read_and_carried_to_the_labels(tmp_path) -> None:
    bands = RNG.integers(0, 256, (3, 40, 70), dtype=np.uint8)
    _write_tiff(
        tmp_path / "ortho.tif", bands, crs=GEO.crs, transform=Affine.from_gdal(*GEO.geotransform)
    )
    palette = [(0, 0, 0), (255, 64, 0), (0, 160, 255)]
    with open_image(tmp_path / "ortho.tif") as source:
        assert source.geo == GEO
        with LabelRasterWriter(
            tmp_path / "labels.tif", source.height, source.width, geo=source.geo, palette=palette
        ) as writer:
            for x0, y0, x1, y1 in tiles(source.height, source.width, 32):
                tile = source.read((x0, y0, x1, y1))
                writer.write((x0, y0, x1, y1), tile[..., 0] % 3)
    with rasterio.open(tmp_path / "labels.tif") as labels:
        assert labels.crs.to_epsg() == 32636
        assert labels.transform.to_gdal() == GEO.geotransform
        assert labels.count == 1 and labels.dtypes[0] == "uint8"
        assert labels.profile["tiled"] and labels.profile["compress"] == "deflate"
        assert labels.colormap(1)[1] == (255, 64, 0, 255)
        np.testing.assert_array_equal(labels.read(1), bands[0] % 3)
    with open_image(tmp_path / "labels.tif") as reopened:
        assert reopened.geo == GEO


def test_tiff_wider_than_32767_px_is_read_window_by_window(tmp_path) -> None:
    height, width = 300, 40_000
    geo = GeoInfo((0.0, 0.005, 0.0, 0.0, 0.0, -0.005), "EPSG:3857")
    path = write_test_tiff(tmp_path / "strip.tif", height, width, tile=256, geo=geo, seed=3)
    assert path.read_bytes()[:4] == b"II+\x00"  # BigTIFF
    full_bytes = height * width * 3
    assert path.stat().st_size < full_bytes / 20  # compressed
    with open_image(path) as source:
        assert (source.height, source.width, source.geo) == (height, width, geo)
        for window in [(0, 0, 512, 300), (33_000, 17, 34_100, 300), (width - 700, 0, width, 9)]:
            np.testing.assert_array_equal(source.read(window), synthetic_rgb(window, seed=3))
        beyond = source.read((width - 10, 0, width + 10, 4))
        assert beyond[:, 10:].max() == 0
        np.testing.assert_array_equal(beyond[:, :10], synthetic_rgb((width - 10, 0, width, 4), 3))

        tracemalloc.start()  # numpy's buffers are traced; GDAL's cache is capped by the module
        try:
            for window in tiles(height, width, 512, 32):
                source.read(window)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < full_bytes / 20, f"peak {peak / 1e6:.1f} MB for a {full_bytes / 1e6:.0f} MB image"


def test_synthetic_rgb_follows_its_formula() -> None:
    window = (-3, 1000, 700, 1005)
    x = np.arange(-3, 700)[None, :]
    y = np.arange(1000, 1005)[:, None]
    expected = np.stack(
        np.broadcast_arrays(x + y // 8 + 2, y + x // 8 + 14, (x // 64) * 37 + (y // 64) * 11 + 26),
        axis=-1,
    )
    np.testing.assert_array_equal(synthetic_rgb(window, seed=2), expected % 256)


# --- errors -----------------------------------------------------------------------------


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_jpeg(path: Path) -> Path:
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:600])
    return path


def _truncated_tiff(path: Path) -> Path:
    bands = RNG.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    _write_tiff(path, bands, tiled=True, blockxsize=32, blockysize=32, compress="deflate")
    data = path.read_bytes()
    path.write_bytes(data[:1000] + bytes(len(data) - 1000))  # tiles zeroed: inflate fails
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: d, "folder"),
        (lambda d: _file(d / "empty.png", b""), "empty"),
        (lambda d: _file(d / "notes.jpg", b"not a photo"), "format"),
        (lambda d: _truncated_jpeg(d / "cut.jpg"), "[Tt]runcated"),
        (lambda d: _file(d / "bad.tif", b"II*\x00" + bytes(50)), ""),
    ],
    ids=["missing", "folder", "empty", "text", "truncated-jpeg", "tiff-header-only"],
)
def test_unreadable_files_raise_coralseg_error(tmp_path, make, reason) -> None:
    path = make(tmp_path)
    with pytest.raises(
        CoralsegError, match=f"cannot read image {re.escape(str(path))}: .*{reason}"
    ):
        open_image(path)


def test_corrupt_tiff_tiles_raise_coralseg_error_when_read(tmp_path) -> None:
    path = _truncated_tiff(tmp_path / "cut.tif")
    with open_image(path) as source, pytest.raises(CoralsegError, match="cannot read image"):
        source.read((0, 0, 32, 32))


def test_unsupported_samples_are_refused_with_advice(tmp_path) -> None:
    _write_tiff(tmp_path / "float.tif", np.zeros((3, 4, 4), np.float32))
    with pytest.raises(CoralsegError, match=r"float32.*convert"):
        open_image(tmp_path / "float.tif")


def test_cmyk_tiff_is_converted_to_rgb(tmp_path) -> None:
    Image.new("CMYK", (4, 3), (0, 255, 0, 0)).save(tmp_path / "cmyk.tif")  # magenta ink
    with open_image(tmp_path / "cmyk.tif") as source:
        assert source.read().reshape(-1, 3).tolist() == [[255, 0, 255]] * 12


def test_images_too_large_for_pillow_are_refused_with_advice(tmp_path, monkeypatch) -> None:
    Image.new("RGB", (40, 40)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(CoralsegError, match=r"too large.*tiled GeoTIFF"):
        open_image(tmp_path / "huge.png")


def test_reading_a_closed_image_is_an_error(tmp_path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    with open_image(tmp_path / "a.png") as source:
        pass
    with pytest.raises(ValueError, match="closed"):
        source.read()


@pytest.mark.slow
def test_40k_square_tiff_is_read_in_bounded_memory(tmp_path) -> None:
    """40,000 x 40,000 RGB (4.8 GB of pixels): created, read whole window by window and
    labelled in a fresh process whose peak RSS must stay far below the image."""
    script = textwrap.dedent(
        f"""
        import resource
        import numpy as np
        import sys
        sys.path.append({str(Path(__file__).resolve().parents[1])!r})  # tests/
        from coral_core.formats.label_rasters import LabelRasterWriter
        from coral_core.formats.raster_io import open_image
        from raster_fixtures import write_test_tiff  # mmsegmentation ships a `tests` package

        path = write_test_tiff({str(tmp_path / "big.tif")!r}, 40_000, 40_000)
        with open_image(path) as source, LabelRasterWriter(
            {str(tmp_path / "labels.tif")!r}, source.height, source.width
        ) as writer:
            for y0 in range(0, source.height, 1024):
                for x0 in range(0, source.width, 1024):
                    window = (x0, y0, min(x0 + 1024, source.width), min(y0 + 1024, source.height))
                    writer.write(window, source.read(window)[..., 2] // 64)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert int(result.stdout.split()[-1]) < 1.0e9
