"""``coralseg cover``'s options turned into settings: region of interest, scale, groups."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coral_core.ecology.groups import (
    fields_from_pattern,
    match_metadata,
    pattern_fields,
    read_metadata_csv,
)
from coral_core.ecology.scale import check_scale
from coral_core.errors import CoralsegError
from coralseg.cover_inputs import CoverSource
from coralseg.cover_report import CoverSettings

SCALE_COLUMN = "pixels_per_cm"
ROI_COLUMN = "roi_polygon"
GEOTRANSFORM = "geotransform"  # --scale geotransform: from each GeoTIFF's pixel size


def parse_margin(text: str) -> tuple[float, str]:
    """``"40"`` -> ``(40, "px")``; ``"5%"`` -> ``(0.05, "fraction")``."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.rstrip("%"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (percent and value >= 50):
        raise CoralsegError(
            f"--roi-margin must be pixels (e.g. 40) or a percentage of each side below 50 "
            f"(e.g. 5%), got {text!r}"
        )
    return (value / 100.0, "fraction") if percent else (value, "px")


def parse_polygon(text: str) -> np.ndarray:
    """``"x,y x,y x,y"`` -> ``(K, 2)`` float64 pixel vertices."""
    try:
        points = np.array(
            [[float(v) for v in pair.split(",")] for pair in text.replace(";", " ").split()],
            dtype=np.float64,
        )
    except ValueError:
        points = np.zeros((0, 0))
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3 or not np.isfinite(points).all():
        raise CoralsegError(
            f"--roi-polygon takes at least three X,Y pixel corners separated by spaces, e.g. "
            f"'120,80 1800,95 1790,1700 110,1690'; got {text!r}"
        )
    return points


def parse_quadrat(text: str) -> tuple[float, float]:
    """``"100"`` -> ``(100, 100)``; ``"100x50"`` -> ``(100, 50)`` centimetres."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise CoralsegError(
            f"--quadrat-size-cm takes the frame's inside side in cm (e.g. 100) or WxH (e.g. "
            f"100x50), got {text!r}"
        )
    return values[0], values[1]


def parse_scale(text: str, names: Sequence[str]) -> tuple[float | None, dict[str, float] | None]:
    """``--scale``: a number of pixels per cm, or a CSV with a ``pixels_per_cm`` column."""
    try:
        return check_scale(float(text)), None
    except ValueError:
        pass
    path = Path(text)
    if not path.is_file():
        raise CoralsegError(
            f"--scale takes pixels per cm (e.g. 18.5), a CSV with columns image, "
            f"{SCALE_COLUMN}, or {GEOTRANSFORM}; {text!r} is none of these"
        )
    rows, columns = read_metadata_csv(path)
    if SCALE_COLUMN not in columns:
        raise CoralsegError(
            f"the scale CSV {path} needs a column {SCALE_COLUMN!r}; its columns are "
            f"{', '.join(columns)}"
        )
    matched, _ = match_metadata(names, rows)
    scales: dict[str, float] = {}
    for name, row in matched.items():
        if not row.get(SCALE_COLUMN):
            continue
        try:
            scales[name] = check_scale(float(row[SCALE_COLUMN]))
        except ValueError:
            raise CoralsegError(
                f"the scale CSV {path} gives {row[SCALE_COLUMN]!r} pixels per cm for {name}; "
                "use a positive number"
            ) from None
    return None, scales


def parse_roi_csv(path: Path, names: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-image polygons from a CSV with an image column and a ``roi_polygon`` column
    (``"x,y x,y x,y ..."``, pixels): ``(polygons by image name, names without one)``."""
    rows, columns = read_metadata_csv(path)
    if ROI_COLUMN not in columns:
        raise CoralsegError(
            f"the region-of-interest CSV {path} needs a column {ROI_COLUMN!r} of pixel "
            f"corners 'x,y x,y x,y ...'; its columns are {', '.join(columns)}"
        )
    matched, missing = match_metadata(names, rows)
    polygons = {}
    for name, row in matched.items():
        if not row.get(ROI_COLUMN):
            missing.append(name)
            continue
        try:
            polygons[name] = parse_polygon(row[ROI_COLUMN])
        except CoralsegError:
            raise CoralsegError(
                f"the region-of-interest CSV {path} gives {row[ROI_COLUMN]!r} for {name}; "
                "write at least three pixel corners 'x,y x,y x,y'"
            ) from None
    return polygons, missing


def parse_settings(
    args: argparse.Namespace, names: Sequence[str] = ()
) -> tuple[CoverSettings, list[str]]:
    """The measuring settings of the command's options, and notes to print."""
    if args.roi_margin and args.roi_polygon:
        raise CoralsegError("give either --roi-margin or --roi-polygon, not both")
    if args.scale and args.quadrat_size_cm:
        raise CoralsegError("give either --scale or --quadrat-size-cm, not both")
    if args.min_colony_area < 1:
        raise CoralsegError(
            f"--min-colony-area must be at least 1 pixel, got {args.min_colony_area}"
        )
    notes = []
    margin, unit = parse_margin(args.roi_margin) if args.roi_margin else (None, "px")
    polygon, polygons = None, None
    if args.roi_polygon and Path(args.roi_polygon).is_file():
        polygons, missing = parse_roi_csv(Path(args.roi_polygon), names)
        if missing:
            notes.append(
                f"{len(missing)} image(s) have no polygon in {args.roi_polygon} and are "
                f"measured whole, e.g. {missing[0]}"
            )
    elif args.roi_polygon:
        polygon = parse_polygon(args.roi_polygon)
    from_geo = args.scale == GEOTRANSFORM
    pixels_per_cm, by_image = (None, None)
    if args.scale and not from_geo:
        pixels_per_cm, by_image = parse_scale(args.scale, names)
    settings = CoverSettings(
        roi_margin=margin,
        roi_margin_unit=unit,
        roi_polygon=polygon,
        roi_polygon_by_image=polygons,
        pixels_per_cm=pixels_per_cm,
        scale_by_image=by_image,
        quadrat_cm=parse_quadrat(args.quadrat_size_cm) if args.quadrat_size_cm else None,
        scale_from_geotransform=from_geo,
        colonies_from=args.colonies_from,
        min_colony_area=args.min_colony_area,
        connectivity=args.connectivity,
    )
    return settings, notes


def image_fields(
    args: argparse.Namespace,
    source: CoverSource,
    prediction_source: CoverSource | None,
    names: Sequence[str],
) -> tuple[dict[str, dict[str, str]], list[str], list[str], list[str]]:
    """Fields of every image, the field columns, the group-by fields, and notes to print.

    Fields come from the source (``split`` of a prepare folder) and ``--groups``.
    """
    fields: dict[str, dict[str, str]] = {}
    for item in (*source.items, *(prediction_source.items if prediction_source else ())):
        if item.fields:
            fields.setdefault(item.name, {}).update(item.fields)
    source_fields = sorted({f for values in fields.values() for f in values})
    notes: list[str] = []
    group_fields: list[str] = []
    if args.groups:
        spec = args.groups
        if spec.lower().endswith(".csv") or Path(spec).is_file():
            metadata, group_fields_tuple = read_metadata_csv(spec, args.image_column)
            group_fields = list(group_fields_tuple)
            found, missing = match_metadata(names, metadata)
            what = f"the CSV {spec}"
        else:
            if args.image_column:
                raise CoralsegError("--image-column is for a --groups CSV, not a pattern")
            try:
                group_fields = list(pattern_fields(spec))
                found, missing = fields_from_pattern(names, spec)
            except ValueError as err:
                raise CoralsegError(str(err)) from None
            what = f"the pattern {spec!r}"
        if not found:
            raise CoralsegError(
                f"no image name matches {what} (e.g. {names[0]!r}); check the pattern or the "
                "CSV's image column"
            )
        if missing:
            notes.append(
                f"{len(missing)} image(s) have no fields from {what} and form the group '?', "
                f"e.g. {missing[0]}"
            )
        for name, values in found.items():
            fields.setdefault(name, {}).update(values)
    field_names = [*source_fields, *(f for f in group_fields if f not in source_fields)]
    if args.group_by:
        group_by = [f.strip() for f in args.group_by.split(",") if f.strip()]
        unknown = [f for f in group_by if f not in field_names]
        if unknown:
            raise CoralsegError(
                f"--group-by {', '.join(unknown)}: no such field; the images have "
                f"{', '.join(field_names) or 'no fields (give --groups)'}"
            )
    else:
        group_by = group_fields
    return fields, field_names, group_by, notes
