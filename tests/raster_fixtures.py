"""Synthetic rasters of any size for tests and benchmarks (not part of the library).

``write_test_tiff`` writes a tiled, deflate-compressed RGB BigTIFF tile by tile, so even a
40,000 x 40,000 image (4.8 GB of pixels) takes a few tiles of memory and a small file;
``synthetic_rgb`` gives the content of any window of it, so a reader's output can be checked
pixel by pixel without holding the image.

Windows are ``(x0, y0, x1, y1)`` in pixels, end exclusive, as in
:mod:`coral_core.formats.raster_io`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window as GdalWindow

from coral_core.atomic import atomic_path
from coral_core.formats.label_rasters import TIFF_TILE
from coral_core.formats.raster_io import GDAL_CACHE_BYTES, GeoInfo, Window


def synthetic_rgb(window: Window, seed: int = 0) -> np.ndarray:
    """HxWx3 uint8 content of ``write_test_tiff``'s image at ``window`` (any window).

    Ramps that change by one per pixel across x (red) and y (green) plus 64-px blocks (blue),
    shifted by ``seed``: a misplaced, transposed or flipped read shows up, and deflate with
    a horizontal predictor compresses it well.
    """
    x0, y0, x1, y1 = (int(v) for v in window)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"window {window} is not (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")
    return np.moveaxis(synthetic_bands((x0, y0, x1, y1), seed), 0, -1).copy()


def synthetic_bands(window: Window, seed: int) -> np.ndarray:
    """``synthetic_rgb`` band-first: ``(3, H, W)`` uint8, as GDAL writes it."""
    x0, y0, x1, y1 = window
    x = np.arange(x0, x1, dtype=np.int64)
    y = np.arange(y0, y1, dtype=np.int64)
    # Each band is a column term plus a row term, summed in uint8 so it wraps modulo 256:
    # a few broadcast additions per tile, which keeps 40,000 px images quick to write.
    terms = [
        (x + seed, y // 8),
        (x // 8, y + 7 * seed),
        ((x // 64) * 37 + 13 * seed, (y // 64) * 11),
    ]
    bands = np.empty((3, y1 - y0, x1 - x0), np.uint8)
    for band, (column, row) in zip(bands, terms, strict=True):
        np.add(
            (column & 255).astype(np.uint8)[None, :],
            (row & 255).astype(np.uint8)[:, None],
            out=band,
        )
    return bands


def write_test_tiff(
    path: str | os.PathLike,
    height: int,
    width: int,
    tile: int = TIFF_TILE,
    geo: GeoInfo | None = None,
    seed: int = 0,
) -> Path:
    """Create a tiled, deflate-compressed RGB BigTIFF of ``synthetic_rgb`` content.

    Written one TIFF tile at a time, so memory stays at a few tiles whatever the size.
    ``tile`` must be a multiple of 16 (TIFF's rule); ``geo`` georeferences the file.
    Returns ``path``; the file appears only once it is complete.
    """
    path = Path(path)
    if tile <= 0 or tile % 16:
        raise ValueError(f"TIFF tiles are a positive multiple of 16 px, got {tile}")
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": 3,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": tile,
        "blockysize": tile,
        "compress": "deflate",
        "predictor": 2,
        "bigtiff": "YES",
        "photometric": "RGB",
        "interleave": "pixel",
    }
    if geo is not None:
        profile.update(transform=Affine.from_gdal(*geo.geotransform), crs=geo.crs)
    with (
        atomic_path(path) as temporary,
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(temporary, "w", **profile) as dataset:
            for y0 in range(0, height, tile):
                for x0 in range(0, width, tile):
                    x1, y1 = min(x0 + tile, width), min(y0 + tile, height)
                    bands = synthetic_bands((x0, y0, x1, y1), seed)
                    dataset.write(bands, window=GdalWindow(x0, y0, x1 - x0, y1 - y0))
    return path
