"""Label rasters: one band of class values per pixel, as (Geo)TIFF or PNG.

The one owner of this format, writer and reader:

- :class:`LabelRasterWriter` writes an ``(H, W)`` uint8 label raster window by window: a
  tiled, deflate-compressed GeoTIFF (BigTIFF when the size needs it, georeferencing carried
  over) for ``.tif``/``.tiff``, or a PNG (small images only) for ``.png``. The file appears
  under its name only when the writer closes without an error.
- :func:`read_label_mask` reads a whole label raster back as ``(H, W)`` uint8/uint16 class
  values and its georeference (:func:`coral_core.formats.raster_io.geo_of`). PNG palette
  images give their indices, not colours; everything that is not one channel of 8- or 16-bit
  unsigned values (an RGB colour mask, a float raster) is refused with a sentence.

Windows are ``(x0, y0, x1, y1)`` pixels, end exclusive, as in
:mod:`coral_core.formats.raster_io`, which reads photos.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window as _GdalWindow

from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo, Window, check_window, gdal_env, geo_of

RGB = tuple[int, int, int]

MASK_SUFFIXES = (".png", ".tif", ".tiff")  # what label rasters are read and written as
TIFF_TILE = 512  # block side of the TIFFs written here: a multiple of 16, as TIFF requires
MAX_PNG_SIDE = 20_000  # larger label rasters are written as GeoTIFF
# Classic TIFF offsets are 32-bit. Compression never grows the data by more than a fraction
# of a percent, so BigTIFF is needed only near 4 GiB of uncompressed samples.
_BIGTIFF_BYTES = int(0.9 * 2**32)
_TIFF_SUFFIXES = (".tif", ".tiff")
_SINGLE_CHANNEL_MODES = ("L", "P", "I;16", "I;16B", "I", "1")


def read_label_mask(path: str | os.PathLike) -> tuple[np.ndarray, GeoInfo | None]:
    """A label raster as ``(H, W)`` uint8/uint16 class values, and its georeference if any.

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


def _read_tiff(path: Path) -> tuple[np.ndarray, GeoInfo | None]:
    try:
        with gdal_env(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as dataset:
                if dataset.count != 1:
                    raise CoralsegError(
                        f"{path} has {dataset.count} bands; label masks have one band of "
                        "class values"
                    )
                return _as_label_array(dataset.read(1), path), geo_of(dataset)
    except (RasterioError, OSError) as err:
        raise CoralsegError(f"cannot read the mask {path}: {err}") from None


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


def _temporary_sibling(path: Path) -> Path:
    """A hidden name in ``path``'s folder, so the final rename never crosses file systems."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")


def _gdal_profile(height: int, width: int, bands: int, tile: int, geo: GeoInfo | None) -> dict:
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": bands,
        "dtype": "uint8",
        "tiled": True,
        "blockxsize": tile,
        "blockysize": tile,
        "compress": "deflate",
        "bigtiff": "YES" if _needs_bigtiff(height, width, bands) else "NO",
    }
    if geo is not None:
        profile["transform"] = Affine.from_gdal(*geo.geotransform)
        profile["crs"] = geo.crs
    return profile


def _needs_bigtiff(height: int, width: int, bands: int) -> bool:
    return height * width * bands > _BIGTIFF_BYTES


class LabelRasterWriter:
    """Writes an HxW uint8 label raster window by window; a context manager.

    - ``.tif``/``.tiff``: a tiled (``TIFF_TILE`` px), deflate-compressed GeoTIFF, BigTIFF
      when over ~3.8 GB of pixels, with ``geo``'s geotransform and CRS. Memory is the window
      plus GDAL's block cache (``raster_io.GDAL_CACHE_BYTES``), not the image: write windows in row
      order, ideally aligned to the ``block`` grid, so each tile is complete when GDAL
      compresses it.
    - ``.png``: the raster is kept in memory and saved at close, so at most
      ``MAX_PNG_SIDE`` px per side; PNG cannot hold georeferencing, so ``geo`` is refused.
    - ``palette`` (class id -> RGB, as a sequence or a mapping) is stored as the file's
      colour table, so viewers show classes in colour; the pixel values stay class ids.
    - Pixels never written are 0. The file is written under a temporary name in the same
      folder and renamed to ``path`` (replacing any old file) when the writer closes without
      an error; after an error inside the ``with`` block the partial file is removed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        height: int,
        width: int,
        geo: GeoInfo | None = None,
        palette: Sequence[RGB] | Mapping[int, RGB] | None = None,
    ) -> None:
        self.path = Path(path)
        self.height, self.width = int(height), int(width)
        self.block = TIFF_TILE
        suffix = self.path.suffix.lower()
        if suffix not in (".tif", ".tiff", ".png"):
            raise CoralsegError(
                f"cannot write labels to {self.path}: use a .tif/.tiff (any size, keeps "
                f"georeferencing) or .png (up to {MAX_PNG_SIDE} px per side) name"
            )
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"a label raster needs a positive size, got {height} x {width}")
        if not self.path.parent.is_dir():
            raise CoralsegError(
                f"cannot write labels to {self.path}: folder {self.path.parent} does not exist"
            )
        self._colors = _palette_entries(palette)
        self._tmp = _temporary_sibling(self.path)
        self._dataset = None
        self._array = None
        self._open = True
        if suffix == ".png":
            if max(self.height, self.width) > MAX_PNG_SIDE:
                raise CoralsegError(
                    f"cannot write labels to {self.path}: {self.width} x {self.height} px is "
                    f"too large for PNG (at most {MAX_PNG_SIDE} px per side); use a .tif name"
                )
            if geo is not None:
                raise CoralsegError(
                    f"cannot write labels to {self.path}: PNG cannot keep the image's "
                    "georeferencing; use a .tif name"
                )
            self._array = np.zeros((self.height, self.width), np.uint8)
            return
        try:
            with gdal_env(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dataset = rasterio.open(
                    self._tmp, "w", **_gdal_profile(self.height, self.width, 1, self.block, geo)
                )
                if self._colors:
                    colormap = {i: (*rgb, 255) for i, rgb in self._colors.items()}
                    self._dataset.write_colormap(1, colormap)
        except RasterioError as exc:
            self.abort()
            raise CoralsegError(f"cannot write labels to {self.path}: {exc}") from exc

    def write(self, window: Window, labels: np.ndarray) -> None:
        """Write HxW integer ``labels`` (values 0..255) at ``window``, which must lie inside."""
        if not self._open:
            raise ValueError(f"the writer for {self.path} is closed")
        x0, y0, x1, y1 = check_window(window)
        if x0 < 0 or y0 < 0 or x1 > self.width or y1 > self.height:
            raise ValueError(
                f"window {window} lies outside the {self.width} x {self.height} label raster"
            )
        labels = _as_labels(labels)
        if labels.shape != (y1 - y0, x1 - x0):
            raise ValueError(
                f"window {window} needs labels of shape {(y1 - y0, x1 - x0)}, got {labels.shape}"
            )
        if self._array is not None:
            self._array[y0:y1, x0:x1] = labels
            return
        try:
            with gdal_env():
                self._dataset.write(labels, 1, window=_GdalWindow(x0, y0, x1 - x0, y1 - y0))
        except RasterioError as exc:
            raise CoralsegError(f"cannot write labels to {self.path}: {exc}") from exc

    def close(self) -> None:
        """Finish the file and give it its name; calling it again does nothing."""
        if not self._open:
            return
        self._open = False
        try:
            if self._dataset is not None:
                with gdal_env():
                    self._dataset.close()
            else:
                self._save_png()
            os.replace(self._tmp, self.path)
        except (RasterioError, OSError) as exc:
            raise CoralsegError(f"cannot write labels to {self.path}: {exc}") from exc
        finally:
            self._array = None
            self._tmp.unlink(missing_ok=True)  # left only when something failed

    def abort(self) -> None:
        """Stop writing and remove the partial file; ``path`` is left as it was."""
        self._open = False
        self._array = None
        try:
            if self._dataset is not None:
                with gdal_env():
                    self._dataset.close()
        except RasterioError:
            pass  # the file is being discarded anyway
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> LabelRasterWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _save_png(self) -> None:
        image = Image.fromarray(self._array)  # mode "L"
        if self._colors:
            flat = np.zeros((256, 3), np.uint8)
            for index, rgb in self._colors.items():
                flat[index] = rgb
            image = image.convert("P")  # same pixel values, now indices into the palette
            image.putpalette(flat.ravel().tolist())
        image.save(self._tmp, format="PNG")


def _palette_entries(palette: Sequence[RGB] | Mapping[int, RGB] | None) -> dict[int, RGB]:
    if palette is None:
        return {}
    items = palette.items() if isinstance(palette, Mapping) else enumerate(palette)
    entries = {}
    for index, rgb in items:
        color = tuple(int(c) for c in rgb)
        if not 0 <= int(index) <= 255 or len(color) != 3 or not all(0 <= c <= 255 for c in color):
            raise ValueError(f"palette entry {index}: {rgb} is not an index 0..255 -> RGB 0..255")
        entries[int(index)] = color
    return entries


def _as_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == np.uint8:
        return labels
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if np.issubdtype(labels.dtype, np.integer):
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError("label values must lie in 0..255 to be written as uint8")
        return labels.astype(np.uint8)
    raise ValueError(f"labels must be integers in 0..255, got dtype {labels.dtype}")
