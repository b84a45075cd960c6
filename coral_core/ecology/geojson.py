"""Colonies as GeoJSON features, in pixel or map coordinates.

Pixel coordinates are those of :mod:`coral_core.formats.polygons` (x right, y down, pixel
``(row i, column j)`` covering ``[j, j + 1) x [i, i + 1)``); load them in QGIS as a layer
without CRS over the image (y is downward, so flip the axis or view the image the same
way). Map coordinates come from a raster's geotransform
(:class:`coral_core.formats.raster_io.GeoInfo`, GDAL's convention: the pixel corner ``(col, row)``
lies at ``x0 + col * a + row * b``, ``y0 + col * d + row * e``) and carry its CRS.

Each colony is one feature: a ``Polygon`` (a ``MultiPolygon`` when it has several parts),
or a ``Point`` at its centroid when it has no traced outline. Rings are closed (first
position repeated) and oriented as RFC 7946 asks in the output coordinates: exteriors
counter-clockwise, holes clockwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from coral_core.atomic import atomic_path, write_text_atomically
from coral_core.ecology.colonies import Colony, colony_rows
from coral_core.formats.raster_io import GeoInfo


def pixel_to_map(points: np.ndarray, geo: GeoInfo) -> np.ndarray:
    """``(K, 2)`` pixel ``(x, y)`` -> ``(K, 2)`` map coordinates through the geotransform."""
    x0, a, b, y0, d, e = geo.geotransform
    points = np.asarray(points, dtype=np.float64)
    cols, rows = points[:, 0], points[:, 1]
    return np.stack([x0 + cols * a + rows * b, y0 + cols * d + rows * e], axis=1)


def _ring(points: np.ndarray, geo: GeoInfo | None, exterior: bool) -> list[list[float]]:
    coords = pixel_to_map(points, geo) if geo is not None else np.asarray(points, dtype=float)
    x, y = coords[:, 0], coords[:, 1]
    signed_area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
    if (signed_area > 0) != exterior:  # counter-clockwise has positive area (y up)
        coords = coords[::-1]
    closed = np.vstack([coords, coords[:1]])
    return [[round(float(u), 6), round(float(v), 6)] for u, v in closed]


def colony_geometry(colony: Colony, geo: GeoInfo | None = None) -> dict[str, Any]:
    """The GeoJSON geometry of a colony's outline (its centroid without one)."""
    if not colony.outline:
        point = np.array([colony.centroid])
        x, y = pixel_to_map(point, geo)[0] if geo is not None else point[0]
        return {"type": "Point", "coordinates": [round(float(x), 6), round(float(y), 6)]}
    polygons = [
        [_ring(p.exterior, geo, True), *(_ring(h, geo, False) for h in p.holes)]
        for p in colony.outline
    ]
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": polygons}


def colony_features(
    image: str,
    colonies: Sequence[Colony],
    geo: GeoInfo | None = None,
    fields: Mapping[str, str] | None = None,
    field_names: Sequence[str] = (),
    pixels_per_cm: float | None = None,
) -> list[dict[str, Any]]:
    """One GeoJSON feature per colony; its properties are the colony's ``colonies.csv`` row
    (:func:`coral_core.ecology.colonies.colony_rows`)."""
    rows = colony_rows(image, colonies, dict(fields or {}), field_names, pixels_per_cm)
    return [
        {"type": "Feature", "geometry": colony_geometry(colony, geo), "properties": row}
        for colony, row in zip(colonies, rows, strict=True)
    ]


def feature_collection(
    features: Sequence[dict[str, Any]], crs: str | None = None
) -> dict[str, Any]:
    """A ``FeatureCollection``; with ``crs`` (``"EPSG:32706"`` or WKT) a named ``crs``
    member, which QGIS and GDAL read (RFC 7946 dropped it but allows it by agreement)."""
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    if crs:
        name = crs
        if crs.upper().startswith("EPSG:"):
            name = f"urn:ogc:def:crs:EPSG::{crs.split(':', 1)[1]}"
        collection["crs"] = {"type": "name", "properties": {"name": name}}
    collection["features"] = list(features)
    return collection


def write_geojson(path: str | Path, collection: Mapping[str, Any]) -> Path:
    """Write a feature collection atomically."""
    path = Path(path)
    write_text_atomically(path, json.dumps(collection) + "\n")
    return path


class GeoJSONWriter:
    """Write a feature collection feature by feature, so memory does not grow with it.

    Use as a context manager; :meth:`add` features as they come. The file appears (whole)
    when the block ends without an error. The ``crs`` member is written when every feature
    added was declared with the same CRS (see :func:`feature_collection`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._crs: set[str | None] = set()
        self._context = atomic_path(self.path)
        self._handle: IO[str] | None = None

    def __enter__(self) -> GeoJSONWriter:
        temporary = self._context.__enter__()
        self._handle = temporary.open("w", encoding="utf-8")
        self._handle.write('{"type": "FeatureCollection", "features": [')
        return self

    def add(self, features: Sequence[dict[str, Any]], crs: str | None = None) -> None:
        """Append features whose coordinates are in ``crs``: None for pixel coordinates,
        ``""`` for map coordinates of an unknown CRS."""
        if self._handle is None:
            raise RuntimeError("GeoJSONWriter.add is for use inside its with block")
        for feature in features:
            self._handle.write(("," if self.count else "") + "\n" + json.dumps(feature))
            self.count += 1
        if features:
            self._crs.add(crs)

    @property
    def crs(self) -> str | None:
        """The CRS of every feature so far, or None (pixel coordinates, unknown, or mixed)."""
        return (next(iter(self._crs)) or None) if len(self._crs) == 1 else None

    @property
    def mixed(self) -> bool:
        """Whether features in different coordinate systems were added."""
        return len(self._crs) > 1

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._handle is None:
            return
        try:
            if exc_type is None:
                self._handle.write("\n]")
                crs = feature_collection([], self.crs).get("crs")
                if crs is not None:
                    self._handle.write(', "crs": ' + json.dumps(crs))
                self._handle.write("}\n")
        finally:
            self._handle.close()
            self._context.__exit__(exc_type, exc, tb)
