"""Reading reef images of any size window by window, and their georeference.

Windows are ``(x0, y0, x1, y1)`` in pixels of the image as it is shown (after orientation),
end exclusive: columns ``x0..x1-1``, rows ``y0..y1-1``.

Reading: ``open_image(path)`` -> ``ImageSource``, whose ``read(window)`` returns HxWx3 uint8
RGB. Parts of a window outside the image read as 0 (black) and as False in
``valid_mask(window)``, so a model sees fixed-size inputs at the edges.

- TIFF (BigTIFF and GeoTIFF too; recognised by content, not by name) is read through GDAL
  (rasterio), one window at a time: only the tiles or strips a window touches are decoded,
  so memory follows the window, not the image, plus GDAL's cache of recently decoded
  blocks, capped at ``GDAL_CACHE_BYTES`` while coralseg reads.
- Every other format Pillow reads (JPEG, PNG, WebP, BMP, ...) is decoded whole, once, at
  open; windows are slices. Images Pillow refuses as too large (decompression-bomb limit)
  are refused with advice to convert them to a tiled GeoTIFF.

Every image is normalised to what a photo viewer shows:

1. Orientation: the EXIF orientation tag (TIFF tag 274 for TIFFs) is applied. Georeferenced
   TIFFs are the exception: their geotransform describes the stored grid, and GIS tools
   ignore the tag, so it is ignored for them too.
2. Bands: gray -> RGB (repeated); gray + alpha -> RGB; palette -> RGB through the palette;
   RGBA -> RGB; more than 3 bands (e.g. RGB + near-infrared) -> the first three. CMYK is
   converted to RGB (by Pillow, or by GDAL for TIFFs).
3. Bit depth: samples with more than 8 significant bits keep their 8 most significant ones
   (``v >> (bits - 8)``: 16-bit 65535 -> 255, 12-bit 4095 -> 255), the same rule for every
   window and every file, so tiles of one image agree and no pass over a huge image is
   needed. Bits come from the TIFF's BitsPerSample (e.g. 12) or the sample type (16).
   Samples with fewer than 8 bits are stretched (1-bit 1 -> 255, 4-bit 15 -> 255). Signed,
   32-bit and floating-point samples are refused.
4. Transparency: alpha is dropped from the RGB; ``valid_mask`` is False where alpha is 0 and,
   for TIFFs, wherever GDAL's mask says no data (alpha band, nodata value or mask band).

Georeference: ``ImageSource.geo`` (and :func:`photo_geo`, from a file's header only) is a
:class:`GeoInfo` for a GeoTIFF with a geotransform, read by :func:`geo_of`, which label
rasters use too; None for every other image.

Unreadable, corrupt or non-image files raise ``CoralsegError("cannot read image PATH: ...")``.

``decode_image(bytes or path, max_pixels)`` is the one decoder of a whole picture: the CVAT
bridge (frames downloaded from CVAT), the Nuclio functions (CVAT's base64 image) and
``coralseg infer`` get the same ``(H, W, 3)`` uint8 array for the same file, by the rules
above. Images over ``max_pixels`` raise :class:`ImageTooLargeError` before any pixel is
decoded; each adapter turns that and other ``CoralsegError`` into its own answer (a failed
frame, HTTP 413 or 400, a failed input).

Label rasters (class values, written window by window, and read back) are
:mod:`coral_core.formats.label_rasters`.

Synthetic test rasters of any size (``write_test_tiff``) live in ``tests/raster_fixtures.py``.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.windows import Window as _GdalWindow

from coral_core.errors import CoralsegError

Window = tuple[int, int, int, int]

# GDAL's block cache is process-wide and defaults to 5% of RAM. While coralseg reads or writes
# a TIFF it is capped here, so memory follows the window, not how much of the image was read.
# 256 MiB holds a whole row of 512-px RGB tiles across a 100,000 px wide orthomosaic
# (150 MiB), which overlapping windows read twice.
GDAL_CACHE_BYTES = 256 * 2**20

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_ORIENTATION_TAG = 274
_PILLOW_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_BYTES_NAME = "the image bytes"


@dataclass(frozen=True)
class GeoInfo:
    """Where a raster's pixels lie on Earth.

    Attributes:
        geotransform: GDAL order ``(x_origin, pixel_width, row_rotation, y_origin,
            column_rotation, pixel_height)``; the top-left corner of pixel ``(col, row)`` is at
            ``x = x_origin + col * pixel_width + row * row_rotation`` and
            ``y = y_origin + col * column_rotation + row * pixel_height`` (``pixel_height`` is
            negative for north-up rasters).
        crs: ``"EPSG:<code>"`` where the CRS has an EPSG code, else its WKT; None when the
            file has a geotransform but no CRS.
    """

    geotransform: tuple[float, float, float, float, float, float]
    crs: str | None = None

    def __post_init__(self) -> None:
        values = tuple(float(v) for v in self.geotransform)
        if len(values) != 6:
            raise ValueError(f"a geotransform has 6 numbers, got {len(values)}")
        object.__setattr__(self, "geotransform", values)


@dataclass(frozen=True)
class _Orientation:
    """How the shown image comes from the stored one: transposed if asked, then flipped."""

    transpose: bool
    flip_rows: bool
    flip_cols: bool

    def shown_size(self, stored_height: int, stored_width: int) -> tuple[int, int]:
        if self.transpose:
            return stored_width, stored_height
        return stored_height, stored_width

    def stored_window(self, window: Window, height: int, width: int) -> Window:
        """The stored window holding the shown ``window`` of a ``height x width`` image."""
        x0, y0, x1, y1 = window
        if self.flip_rows:
            y0, y1 = height - y1, height - y0
        if self.flip_cols:
            x0, x1 = width - x1, width - x0
        if self.transpose:
            return y0, x0, y1, x1
        return x0, y0, x1, y1

    def apply(self, stored: np.ndarray) -> np.ndarray:
        """Stored HxW[xC] pixels -> shown pixels (a view)."""
        shown = stored.swapaxes(0, 1) if self.transpose else stored
        if self.flip_rows:
            shown = shown[::-1]
        if self.flip_cols:
            shown = shown[:, ::-1]
        return shown


# EXIF orientation value -> _Orientation (values outside 1..8 are treated as 1, as viewers do).
_ORIENTATIONS = {
    1: _Orientation(False, False, False),
    2: _Orientation(False, False, True),  # mirrored left-right
    3: _Orientation(False, True, True),  # rotated 180
    4: _Orientation(False, True, False),  # mirrored top-bottom
    5: _Orientation(True, False, False),  # transposed
    6: _Orientation(True, False, True),  # shown rotated 90 clockwise
    7: _Orientation(True, True, True),  # transversed
    8: _Orientation(True, True, False),  # shown rotated 90 counter-clockwise
}


def _exif_orientation(value: object) -> _Orientation:
    """The orientation of an EXIF tag value (anything but an int in 1..8 counts as 1)."""
    return _ORIENTATIONS.get(value if isinstance(value, int) else 1, _ORIENTATIONS[1])


def check_window(window: Window) -> Window:
    x0, y0, x1, y1 = (int(v) for v in window)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"window {window} is not (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")
    return x0, y0, x1, y1


class ImageSource:
    """An image opened for reading window by window; see the module docstring.

    Attributes:
        path: the file.
        height, width: size of the image as shown (after orientation), in pixels.
        geo: georeferencing of a GeoTIFF, else None.
        has_mask: whether the file can mark pixels as empty (alpha, nodata, mask band);
            without one, ``valid_mask`` is True everywhere inside the image.
    """

    def __init__(
        self, path: Path, height: int, width: int, geo: GeoInfo | None, has_mask: bool
    ) -> None:
        self.path = path
        self.height = height
        self.width = width
        self.geo = geo
        self.has_mask = has_mask
        self._closed = False

    def read(self, window: Window | None = None) -> np.ndarray:
        """HxWx3 uint8 RGB of ``window`` (None: the whole image); 0 outside the image.

        Always a new array. For TIFFs only the blocks under the window are decoded; reading
        a whole huge image at once needs all of its memory (read it window by window).
        """
        return self._read_padded(window, 3, np.uint8, self._read_inside)

    def valid_mask(self, window: Window | None = None) -> np.ndarray:
        """HxW bool: True where a pixel is inside the image and not marked empty by the file."""
        return self._read_padded(window, 0, np.bool_, self._mask_inside)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, {self.width} x {self.height})"

    def _read_padded(
        self,
        window: Window | None,
        channels: int,
        dtype: type,
        read_inside: Callable[[Window], np.ndarray],
    ) -> np.ndarray:
        if self._closed:
            raise ValueError(f"{self.path} was closed; open it again to read from it")
        x0, y0, x1, y1 = (0, 0, self.width, self.height) if window is None else check_window(window)
        inside = (max(x0, 0), max(y0, 0), min(x1, self.width), min(y1, self.height))
        if inside == (x0, y0, x1, y1) and x1 > x0 and y1 > y0:
            return read_inside(inside)
        shape = (y1 - y0, x1 - x0, channels) if channels else (y1 - y0, x1 - x0)
        out = np.zeros(shape, dtype)
        ix0, iy0, ix1, iy1 = inside
        if ix1 > ix0 and iy1 > iy0:
            out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = read_inside(inside)
        return out

    def _read_inside(self, window: Window) -> np.ndarray:
        raise NotImplementedError

    def _mask_inside(self, window: Window) -> np.ndarray:
        raise NotImplementedError


class _DecodedImage(ImageSource):
    """An image decoded whole by Pillow; windows are copies of slices."""

    def __init__(self, path: Path, rgb: np.ndarray, valid: np.ndarray | None) -> None:
        super().__init__(path, rgb.shape[0], rgb.shape[1], None, valid is not None)
        self._rgb = rgb
        self._valid = valid

    def _read_inside(self, window: Window) -> np.ndarray:
        x0, y0, x1, y1 = window
        return self._rgb[y0:y1, x0:x1].copy()

    def _mask_inside(self, window: Window) -> np.ndarray:
        x0, y0, x1, y1 = window
        if self._valid is None:
            return np.ones((y1 - y0, x1 - x0), bool)
        return self._valid[y0:y1, x0:x1].copy()

    def close(self) -> None:
        super().close()
        self._rgb = self._valid = None


class _GdalImage(ImageSource):
    """A TIFF read through GDAL one window at a time."""

    def __init__(self, path: Path, dataset: rasterio.DatasetReader) -> None:
        self._ds = dataset
        dtypes = set(dataset.dtypes[:3])
        if not dtypes <= {"uint8", "uint16"} or len(dtypes) != 1:
            raise _unreadable(
                path,
                f"its samples are {'/'.join(sorted(dtypes))}; coralseg reads 8- or 16-bit "
                "unsigned images (convert it, e.g. gdal_translate -ot Byte -scale)",
            )
        self._dtype = dtypes.pop()
        self._palette = None
        if dataset.colorinterp[0] == ColorInterp.palette:
            self._palette = _palette_lut(dataset.colormap(1), np.iinfo(self._dtype).max + 1)
            self._bands = [1]
        else:
            self._bands = [1, 2, 3] if dataset.count >= 3 else [1]
        self._bits = _significant_bits(dataset, self._dtype)
        geo = geo_of(dataset)
        # GIS rasters follow their geotransform; GDAL and QGIS ignore the orientation tag.
        self._orientation = _ORIENTATIONS[1 if geo else _tiff_orientation(path)]
        height, width = self._orientation.shown_size(dataset.height, dataset.width)
        has_mask = any(MaskFlags.all_valid not in flags for flags in dataset.mask_flag_enums)
        super().__init__(path, height, width, geo, has_mask)

    def _gdal_window(self, window: Window) -> _GdalWindow:
        x0, y0, x1, y1 = self._orientation.stored_window(window, self.height, self.width)
        return _GdalWindow(x0, y0, x1 - x0, y1 - y0)

    def _read_inside(self, window: Window) -> np.ndarray:
        try:
            with gdal_env():
                bands = self._ds.read(self._bands, window=self._gdal_window(window))
        except RasterioError as exc:
            raise _unreadable(self.path, exc) from exc
        if self._palette is not None:
            pixels = self._palette[bands[0]]
        else:
            pixels = _to_uint8(np.moveaxis(bands, 0, -1), self._bits)
            if pixels.shape[-1] == 1:
                pixels = np.broadcast_to(pixels, (*pixels.shape[:2], 3))
        return np.ascontiguousarray(self._orientation.apply(pixels))

    def _mask_inside(self, window: Window) -> np.ndarray:
        try:
            with gdal_env():
                mask = self._ds.dataset_mask(window=self._gdal_window(window))
        except RasterioError as exc:
            raise _unreadable(self.path, exc) from exc
        return np.ascontiguousarray(self._orientation.apply(mask != 0))

    def close(self) -> None:
        super().close()
        self._ds.close()


def open_image(path: str | os.PathLike) -> ImageSource:
    """Open an image for reading window by window (see the module docstring).

    Raises:
        CoralsegError: the file is missing, not an image, corrupt, or of a kind coralseg
            cannot turn into RGB.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except IsADirectoryError as exc:
        raise _unreadable(path, "it is a folder, not a file") from exc
    except FileNotFoundError as exc:
        raise _unreadable(path, "no such file") from exc
    except OSError as exc:
        raise _unreadable(path, exc.strerror or exc) from exc
    if not head:
        raise _unreadable(path, "the file is empty")
    if head in _TIFF_MAGIC:
        return _open_with_gdal(path)
    return _open_with_pillow(path)


class ImageTooLargeError(CoralsegError):
    """An image with more pixels than the caller decodes at once; ``size`` is its shown
    ``(width, height)`` when known."""

    def __init__(self, message: str, size: tuple[int, int] | None = None) -> None:
        super().__init__(message)
        self.size = size


def decode_image(
    source: bytes | str | os.PathLike, max_pixels: int | None = None, name: str | None = None
) -> np.ndarray:
    """A whole image file (its bytes, or its path) as ``(H, W, 3)`` uint8 RGB, normalised by
    the module's rules (EXIF orientation, bands, one bit-depth rule).

    Args:
        source: the file's bytes, or its path.
        max_pixels: refuse images with more pixels (shown width x height) than this, before
            decoding them; None keeps only Pillow's decompression-bomb limit.
        name: how errors name the image (default: the path, or "the image bytes").

    Raises:
        ImageTooLargeError: more than ``max_pixels`` pixels, or too many for Pillow.
        CoralsegError: empty, corrupt, or not an image coralseg reads.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = Path(name or _BYTES_NAME)
        if not data:
            raise _unreadable(label, "it is empty (0 bytes)")
        if data[:4] in _TIFF_MAGIC:
            return _decode_tiff_bytes(data, label, max_pixels)
        image = _open_with_pillow(label, io.BytesIO(data), max_pixels)
    else:
        image = open_image(source)
        if name is not None:
            image.path = Path(name)
    with image:
        _check_pixels(image.path, image.width, image.height, max_pixels)
        return image.read()


def pillow_image_to_rgb(image: Image.Image) -> np.ndarray:
    """An opened Pillow image (what cvat-sdk hands an auto-annotation function) as
    ``(H, W, 3)`` uint8 RGB by the same rules as :func:`decode_image`."""
    name = Path(getattr(image, "filename", "") or _BYTES_NAME)
    try:
        image.load()
        rgb, _ = _pillow_to_rgb(name, image)
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        if isinstance(exc, CoralsegError):
            raise
        raise _unreadable(name, exc) from exc
    orientation = _exif_orientation(image.getexif().get(_ORIENTATION_TAG, 1))
    return np.ascontiguousarray(orientation.apply(rgb))


def _decode_tiff_bytes(data: bytes, label: Path, max_pixels: int | None) -> np.ndarray:
    """TIFF bytes through GDAL (which reads files): a temporary file, removed at once."""
    with tempfile.TemporaryDirectory(prefix="coralseg-decode-") as folder:
        path = Path(folder) / "image.tif"
        path.write_bytes(data)
        try:
            with open_image(path) as image:
                _check_pixels(label, image.width, image.height, max_pixels)
                return image.read()
        except CoralsegError as err:  # name the image as the caller does, not the temporary
            err.args = (str(err).replace(str(path), str(label)),)
            raise


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"cannot read image {path}: it is {width} x {height} pixels, more than the "
            f"{max_pixels} read at once here",
            (width, height),
        )


def photo_sizes(path: str | os.PathLike) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``(stored, shown)`` sizes of a photo, each ``(width, height)`` in pixels, read from the
    file's header only (no pixels are decoded).

    ``shown`` applies the EXIF orientation, as viewers, CVAT and ``open_image`` do: the two
    differ for photos a camera stored sideways (orientations 5 to 8). ``None`` when the file
    is missing or not an image Pillow reads.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                stored = image.size
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError):
        return None
    orient = _exif_orientation(orientation)
    shown_height, shown_width = orient.shown_size(stored[1], stored[0])
    return stored, (shown_width, shown_height)


def gdal_env() -> rasterio.Env:
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES)


def _unreadable(path: Path, reason: object) -> CoralsegError:
    return CoralsegError(f"cannot read image {path}: {reason}")


def _open_with_gdal(path: Path) -> ImageSource:
    try:
        with gdal_env(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(path)
    except RasterioError as exc:
        raise _unreadable(path, exc) from exc
    try:
        return _GdalImage(path, dataset)
    except BaseException:
        dataset.close()
        raise


def _open_with_pillow(
    path: Path, file: io.BytesIO | None = None, max_pixels: int | None = None
) -> ImageSource:
    """Decode with Pillow: ``file`` when given (``path`` then only names it in errors)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 Mpx and refuses from 179 Mpx; the refusal is reported below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path if file is None else file) as image:
                _check_pixels(path, *image.size, max_pixels)
                image.load()
                orientation = image.getexif().get(_ORIENTATION_TAG, 1)
                rgb, valid = _pillow_to_rgb(path, image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"cannot read image {path}: "
            "it is too large to decode at once; convert it to a tiled GeoTIFF, e.g. "
            "gdal_translate -co TILED=YES -co COMPRESS=DEFLATE -co BIGTIFF=IF_SAFER IN OUT.tif"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        raise _unreadable(path, "not an image format coralseg can read") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        if isinstance(exc, CoralsegError):
            raise
        raise _unreadable(path, exc) from exc
    orient = _exif_orientation(orientation)
    rgb = np.ascontiguousarray(orient.apply(rgb))
    if valid is not None:
        valid = np.ascontiguousarray(orient.apply(valid))
    return _DecodedImage(path, rgb, valid)


def _pillow_to_rgb(path: Path, image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded Pillow image -> (HxWx3 uint8 stored RGB, HxW bool alpha != 0, or None)."""
    if image.mode == "I" or image.mode.startswith("I;16"):  # 16-bit gray (PNG, PGM)
        gray = _to_uint8(np.clip(np.asarray(image), 0, 65535).astype(np.uint16), 16)
        return np.repeat(gray[..., None], 3, axis=2), None
    if image.mode == "F":
        raise _unreadable(path, "its samples are floating point; convert it to 8-bit RGB")
    if image.mode in _PILLOW_ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return rgba[..., :3], rgba[..., 3] != 0
    return np.asarray(image.convert("RGB")), None


def _to_uint8(samples: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned samples with ``bits`` significant bits -> uint8 (module docstring, rule 3)."""
    if bits == 8 and samples.dtype == np.uint8:
        return samples
    if bits > 8:
        return np.minimum(samples >> (bits - 8), 255).astype(np.uint8)
    top = (1 << bits) - 1
    return (np.minimum(samples, top).astype(np.uint16) * 255 // top).astype(np.uint8)


def _significant_bits(dataset: rasterio.DatasetReader, dtype: str) -> int:
    """BitsPerSample as GDAL reports it (NBITS, e.g. 12 in a 16-bit container), else the type's."""
    structure = {**dataset.tags(ns="IMAGE_STRUCTURE"), **dataset.tags(1, ns="IMAGE_STRUCTURE")}
    declared = structure.get("NBITS", "")
    full = np.iinfo(dtype).bits
    bits = int(declared) if declared.isdigit() else full
    return bits if 0 < bits <= full else full


def _palette_lut(colormap: Mapping[int, tuple[int, ...]], size: int) -> np.ndarray:
    lut = np.zeros((size, 3), np.uint8)
    for index, color in colormap.items():
        if 0 <= index < size:
            lut[index] = color[:3]
    return lut


def geo_of(dataset: rasterio.DatasetReader) -> GeoInfo | None:
    """An open rasterio dataset's georeference; None for a plain pixel grid. The one reader of
    georeferences: photos and label rasters alike.

    A raster without a geotransform (GDAL reports the identity) is not placed on Earth even
    when it names a CRS: it gives None, so no scale or alignment is read from a default
    1-unit pixel."""
    if dataset.transform.is_identity:
        return None
    crs = dataset.crs.to_string() if dataset.crs is not None else None
    return GeoInfo(dataset.transform.to_gdal(), crs or None)


def photo_geo(path: str | os.PathLike) -> GeoInfo | None:
    """The georeference of a GeoTIFF photo (:func:`geo_of`); None for other files (by their
    suffix), missing ones or unreadable ones. Reads only the file's header."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return None
    try:
        with gdal_env(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as dataset:
                return geo_of(dataset)
    except (RasterioError, OSError):
        return None


def _tiff_orientation(path: Path) -> int:
    """TIFF tag 274 of the first image (1 if absent or unreadable); GDAL does not report it."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
            order = "<" if head[:2] == b"II" else ">"
            big = struct.unpack(order + "H", head[2:4])[0] == 43
            if big:
                f.seek(struct.unpack(order + "Q", head[8:16])[0])
                count = struct.unpack(order + "Q", f.read(8))[0]
                entry, value_at = 20, 12
            else:
                f.seek(struct.unpack(order + "I", head[4:8])[0])
                count = struct.unpack(order + "H", f.read(2))[0]
                entry, value_at = 12, 8
            table = f.read(entry * min(count, 4096))
    except (OSError, struct.error):
        return 1
    for start in range(0, len(table) - entry + 1, entry):
        tag, kind = struct.unpack(order + "HH", table[start : start + 4])
        if tag == _ORIENTATION_TAG and kind == 3:  # SHORT
            value = struct.unpack(order + "H", table[start + value_at : start + value_at + 2])[0]
            return value if value in _ORIENTATIONS else 1
    return 1
