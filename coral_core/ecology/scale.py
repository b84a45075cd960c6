"""Pixel sizes in centimetres: how many image pixels make one centimetre of reef.

A scale is a positive number of pixels per centimetre (``pixels_per_cm``), for one image
or a whole dataset. It comes from a measurement (a ruler in the photo), from a quadrat
frame of known size whose inside is the region of interest (CRIOBE's 1 m x 1 m frame:
:func:`scale_from_quadrat`), or from a georeferenced raster's pixel size.

Conversions: ``cm = px / pixels_per_cm``; ``cm^2 = px^2 / pixels_per_cm^2``.

:func:`parse_quadrat_size` reads a frame size as written (``"100"``, ``"100x50"``);
:func:`georeferenced_scale` takes the unit of a raster's pixel size from its CRS. Scales per
image come from a CSV (:func:`coral_core.ecology.image_settings.parse_scale`).
"""

from __future__ import annotations

import math

from coral_core.errors import CoralsegError
from coral_core.formats.raster_io import GeoInfo


def check_scale(pixels_per_cm: float) -> float:
    """Return ``pixels_per_cm`` as a float; ``ValueError`` unless it is finite and > 0."""
    try:
        value = float(pixels_per_cm)
    except (TypeError, ValueError):
        raise ValueError(
            f"a scale must be a number of pixels per cm, got {pixels_per_cm!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a scale must be a positive number of pixels per cm, got {pixels_per_cm}")
    return value


def length_cm(pixels: float, pixels_per_cm: float) -> float:
    """A length in pixels as centimetres."""
    return pixels / check_scale(pixels_per_cm)


def area_cm2(pixels: float, pixels_per_cm: float) -> float:
    """An area in square pixels (a pixel count) as square centimetres."""
    return pixels / check_scale(pixels_per_cm) ** 2


def scale_from_quadrat(roi_pixels: int, width_cm: float, height_cm: float | None = None) -> float:
    """Pixels per cm of a photo whose region of interest is the inside of a quadrat frame.

    The frame's inside covers ``width_cm x height_cm`` of reef (square when ``height_cm`` is
    None) and ``roi_pixels`` pixels of the image, so ``pixels_per_cm = sqrt(roi_pixels /
    (width_cm * height_cm))``. This assumes the photo is taken square-on; tilt makes the
    frame a trapezoid, whose area still gives the mean scale over the frame.

    Args:
        roi_pixels: pixels inside the frame (the region of interest's pixel count).
        width_cm, height_cm: the frame's inside size in cm, e.g. 100 for CRIOBE's 1 m frame.
    """
    height_cm = width_cm if height_cm is None else height_cm
    for name, value in (("width_cm", width_cm), ("height_cm", height_cm)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"the quadrat's {name} must be a positive number of cm, got {value}")
    if roi_pixels <= 0:
        raise ValueError("the quadrat's inside holds no pixel; check the region of interest")
    return math.sqrt(roi_pixels / (width_cm * height_cm))


def scale_from_geotransform(geo: GeoInfo, metres_per_unit: float = 1.0) -> float:
    """Pixels per cm of a north-up raster whose map units are ``metres_per_unit`` metres
    (1 for UTM and other metric projections).

    Raises:
        ValueError: the raster is rotated or its pixels are not square (within 1%).
    """
    _, pixel_width, row_rotation, _, column_rotation, pixel_height = geo.geotransform
    if row_rotation or column_rotation:
        raise ValueError("the raster's geotransform is rotated; give the scale explicitly")
    width, height = abs(pixel_width), abs(pixel_height)
    if not width or abs(width - height) > 0.01 * width:
        raise ValueError(
            f"the raster's pixels are not square ({width:g} x {height:g} map units); "
            "give the scale explicitly"
        )
    return 1.0 / (width * metres_per_unit * 100.0)


def georeferenced_scale(geo: GeoInfo) -> float:
    """Pixels per cm of a georeferenced raster from its pixel size and its CRS's units.

    Raises:
        CoralsegError: no CRS, a geographic CRS (degrees), or a rotated or non-square grid.
    """
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    explicit = ("pixels_per_cm",)
    if geo.crs is None:
        raise CoralsegError(
            "it has a geotransform but no CRS, so its pixel size has no unit; give the scale "
            "explicitly",
            settings=explicit,
        )
    try:
        crs = CRS.from_user_input(geo.crs)
    except CRSError as err:
        raise CoralsegError(
            f"cannot read its CRS ({err}); give the scale explicitly", settings=explicit
        ) from None
    if crs.is_geographic:
        raise CoralsegError(
            f"it is in a geographic CRS ({geo.crs}: degrees); reproject it to a metric CRS "
            "(e.g. UTM) or give the scale explicitly",
            settings=explicit,
        )
    _, metres_per_unit = crs.linear_units_factor
    try:
        return scale_from_geotransform(geo, metres_per_unit)
    except ValueError as err:
        raise CoralsegError(str(err), settings=explicit) from None


def parse_quadrat_size(text: str) -> tuple[float, float]:
    """A quadrat frame's inside as written: ``"100"`` -> ``(100, 100)``; ``"100x50"`` ->
    ``(100, 50)`` centimetres (width, height).

    Raises:
        CoralsegError: not one or two positive numbers.
    """
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise CoralsegError(
            f"a quadrat size is the frame's inside side in cm (e.g. 100) or WxH (e.g. "
            f"100x50), got {text!r}",
            settings=("quadrat_cm",),
        )
    return values[0], values[1]
