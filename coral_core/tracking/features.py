"""Both visits' colonies as GeoJSON features that share a colony id.

Each colony is one feature (outline traced as in :mod:`coral_core.ecology.geojson`) in its
own visit's coordinates: map coordinates where the image has a geotransform (both visits of
an orthomosaic plot then overlay in GIS), else that image's pixel coordinates. Properties:
``plot``, ``visit`` (``"before"``/``"after"``), ``image``, ``colony_id`` (shared by the two
visits of one colony), ``fate``, ``class``, ``area_px`` and, with a scale, ``area_cm2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coral_core.ecology.colonies import measure_colony
from coral_core.ecology.geojson import colony_geometry
from coral_core.formats.raster_io import GeoInfo
from coral_core.tracking.colonies import TrackedColony
from coral_core.tracking.fates import ColonyFates


def colony_fate_names(fates: ColonyFates, visit: str, count: int) -> list[str]:
    """The fate of each colony of one visit (``"before"`` or ``"after"``): that of its first
    link."""
    names = [""] * count
    for link in fates.links:
        index = link.before if visit == "before" else link.after
        if index is not None and not names[index]:
            names[index] = link.fate
    return names


def visit_features(
    plot: str,
    visit: str,
    image: str,
    colonies: Sequence[TrackedColony],
    fates: ColonyFates,
    geo: GeoInfo | None = None,
    pixels_per_cm: float | None = None,
) -> list[dict[str, Any]]:
    """One GeoJSON feature per colony of one visit (see the module docstring)."""
    if visit not in ("before", "after"):
        raise ValueError(f"a visit is 'before' or 'after', got {visit!r}")
    ids = fates.before_ids if visit == "before" else fates.after_ids
    fate_names = colony_fate_names(fates, visit, len(colonies))
    features = []
    for colony, colony_id, fate in zip(colonies, ids, fate_names, strict=True):
        measured = measure_colony(
            colony.mask, colony.left, colony.top, colony.label, colony.value, outline=True
        )
        if measured is None:
            continue
        properties: dict[str, Any] = {
            "plot": plot,
            "visit": visit,
            "image": image,
            "colony_id": colony_id,
            "fate": fate,
            "class": colony.label,
            "area_px": colony.area,
        }
        if pixels_per_cm:
            properties["area_cm2"] = round(colony.area / pixels_per_cm**2, 4)
        features.append(
            {
                "type": "Feature",
                "geometry": colony_geometry(measured, geo),
                "properties": properties,
            }
        )
    return features
