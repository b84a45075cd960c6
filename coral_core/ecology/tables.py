"""Tidy CSV tables: one row per observation, one column per variable, written atomically.

Cells hold numbers or text; a missing value (NaN, None) is an empty cell, which R's
``read.csv`` and pandas' ``read_csv`` both read as missing. Floats are written with
Python's shortest round-trip form, so a table read back holds the same numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from coral_core.atomic import atomic_path


def csv_number(value: float | None) -> float | str:
    """A float for a CSV cell; NaN and None become an empty cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return float(value)


def table_columns(rows: Iterable[Mapping[str, object]]) -> list[str]:
    """The union of the rows' keys, in order of first appearance."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def write_csv(
    path: str | Path, rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None
) -> Path:
    """Write rows as a CSV with a header, atomically (UTF-8, ``\\n`` line ends).

    Args:
        columns: the header; by default :func:`table_columns` of the rows. Cells a row lacks
            are empty.

    Returns:
        The path written.
    """
    path = Path(path)
    header = list(columns) if columns is not None else table_columns(rows)
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(row.get(k, "")) for k in header})
    return path


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return int(value)
    return value
