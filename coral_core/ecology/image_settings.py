"""Settings given per image in a CSV: the scale and the region-of-interest polygon.

Both CSVs have an image column (``image``, ``filename``, ``file``, ``path`` or ``name``,
matched as :func:`~coral_core.ecology.groups.match_metadata` matches it) and one value
column: ``pixels_per_cm`` (:func:`parse_scale`, which also takes one number for every
image) or ``roi_polygon``, pixel corners ``"x,y x,y x,y ..."`` (:func:`read_roi_csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coral_core.ecology.groups import match_metadata, read_metadata_csv
from coral_core.ecology.roi import parse_roi_polygon
from coral_core.ecology.scale import check_scale
from coral_core.errors import CoralsegError

SCALE_COLUMN = "pixels_per_cm"
ROI_COLUMN = "roi_polygon"


def parse_scale(text: str, names: Sequence[str]) -> tuple[float | None, dict[str, float] | None]:
    """A scale as written: ``(pixels_per_cm, None)`` for a number such as ``"18.5"``, or
    ``(None, {image name: pixels_per_cm})`` for the path of a CSV with an image column
    (see :func:`~coral_core.ecology.groups.read_metadata_csv`) and ``pixels_per_cm``;
    images of ``names`` without a value have no scale.

    Raises:
        CoralsegError: neither a positive number nor such a CSV.
    """
    try:
        return check_scale(float(text)), None
    except ValueError:
        pass
    path = Path(text)
    if not path.is_file():
        raise CoralsegError(
            f"a scale is pixels per cm (e.g. 18.5) or a CSV with columns image, "
            f"{SCALE_COLUMN}; {text!r} is neither",
            settings=("pixels_per_cm",),
        )
    values, _ = _column_by_image(path, names, SCALE_COLUMN, "scale", "")
    scales: dict[str, float] = {}
    for name, value in values.items():
        try:
            scales[name] = check_scale(float(value))
        except ValueError:
            raise CoralsegError(
                f"the scale CSV {path} gives {value!r} pixels per cm for {name}; "
                "use a positive number"
            ) from None
    return None, scales


def read_roi_csv(path: str | Path, names: Sequence[str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-image polygons from a CSV with an image column and a ``roi_polygon`` column
    (``"x,y x,y x,y ..."``, pixels): ``(polygons by image name, names without one)``.

    Raises:
        CoralsegError: the column is missing or a polygon is malformed.
    """
    corners = " of pixel corners 'x,y x,y x,y ...'"
    values, missing = _column_by_image(path, names, ROI_COLUMN, "region-of-interest", corners)
    polygons = {}
    for name, value in values.items():
        try:
            polygons[name] = parse_roi_polygon(value)
        except CoralsegError:
            raise CoralsegError(
                f"the region-of-interest CSV {path} gives {value!r} for {name}; "
                "write at least three pixel corners 'x,y x,y x,y'"
            ) from None
    return polygons, missing


def _column_by_image(
    path: str | Path, names: Sequence[str], column: str, what: str, holding: str
) -> tuple[dict[str, str], list[str]]:
    """``column``'s non-empty value for each image of ``names`` the CSV has, and the names
    without one."""
    rows, columns = read_metadata_csv(path)
    if column not in columns:
        raise CoralsegError(
            f"the {what} CSV {path} needs a column {column!r}{holding}; its columns are "
            f"{', '.join(columns)}"
        )
    matched, missing = match_metadata(names, rows)
    values = {}
    for name, row in matched.items():
        if row.get(column):
            values[name] = row[column]
        else:
            missing.append(name)
    return values, missing
