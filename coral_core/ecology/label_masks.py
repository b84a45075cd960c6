"""Label mask files: one channel of class values, as PNG or (Geo)TIFF.

:func:`read_label_mask` gives an ``(H, W)`` uint8/uint16 array of class values and the
raster's georeference, if any; :func:`photo_geo` the georeference of a GeoTIFF photo.
Everything that is not a single-channel 8/16-bit mask is refused with a sentence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo

MASK_SUFFIXES = (".png", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")
_SINGLE_CHANNEL_MODES = ("L", "P", "I;16", "I;16B", "I", "1")


def read_label_mask(path: str | Path) -> tuple[np.ndarray, GeoInfo | None]:
    """A label mask as ``(H, W)`` uint8/uint16 class values, and its georeference if any.

    PNG palette images give their indices (not colours); TIFFs are read with GDAL.

    Raises:
        CoralsegError: unreadable, not single-channel, or not 8/16-bit unsigned.
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        return _read_tiff(path)
    try:
        with Image.open(path) as image:
            if image.mode not in _SINGLE_CHANNEL_MODES:
                raise CoralsegError(
                    f"{path} is a {image.mode} image; label masks have one channel of class "
                    "values (a colour mask must be converted to class values first)"
                )
            mask = np.array(image)
    except CoralsegError:
        raise
    except (OSError, ValueError) as err:
        raise CoralsegError(f"cannot read the mask {path}: {err}") from None
    return _as_label_array(mask, path), None


def photo_geo(path: str | Path) -> GeoInfo | None:
    """The georeference of a GeoTIFF photo; None for other files or unreadable ones."""
    path = Path(path)
    if path.suffix.lower() not in _TIFF_SUFFIXES or not path.is_file():
        return None
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as dataset:
            return _geo_of(dataset)
    except (RasterioError, OSError):
        return None


def _read_tiff(path: Path) -> tuple[np.ndarray, GeoInfo | None]:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as dataset:
            if dataset.count != 1:
                raise CoralsegError(
                    f"{path} has {dataset.count} bands; label masks have one band of class values"
                )
            return _as_label_array(dataset.read(1), path), _geo_of(dataset)
    except (RasterioError, OSError) as err:
        raise CoralsegError(f"cannot read the mask {path}: {err}") from None


def _geo_of(dataset) -> GeoInfo | None:
    """A rasterio dataset's georeference; None for a plain (identity) pixel grid."""
    if dataset.transform.is_identity:
        return None
    crs = None
    if dataset.crs is not None:
        epsg = dataset.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else dataset.crs.to_wkt()
    return GeoInfo(tuple(dataset.transform.to_gdal()), crs)


def _as_label_array(mask: np.ndarray, path: Path) -> np.ndarray:
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.ndim != 2:
        raise CoralsegError(f"{path} is not a single-channel label mask (shape {mask.shape})")
    if mask.dtype in (np.uint8, np.uint16):
        return mask
    if np.issubdtype(mask.dtype, np.integer) and mask.min() >= 0 and mask.max() <= 65535:
        return mask.astype(np.uint16)
    raise CoralsegError(f"{path} holds {mask.dtype} values; label masks are 8- or 16-bit classes")
