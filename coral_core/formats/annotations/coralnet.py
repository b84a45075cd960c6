"""CoralNet's annotation CSV (one row per point) and label-code mappings.

CoralNet exports a source's point annotations as a CSV with a header row; the columns
coralseg reads are ``Name`` (the image name), ``Row`` and ``Column`` (0-based pixel indices,
as CoralNet accepts ``0 .. height - 1`` and ``0 .. width - 1``) and ``Label`` (the label's
short code, e.g. ``Porit``; a column named ``Label code`` is read the same way). The file
does not record image sizes: each point is placed at the centre of its pixel and the size
comes from the photo at import. Every other column is kept: one whose value is the same on
all rows of an image (date, aux fields, site, ...) becomes the image's metadata; one that
varies from point to point (machine suggestions, confidences) stays on the point as an
attribute.

A label-code mapping file turns CoralNet's codes into class names: a CSV with two columns
(``code,class``; an optional header row naming them) or a YAML/JSON ``{code: class}``
mapping. Codes that are already class names need no entry.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from coral_core.formats.annotations.model import (
    AnnotatedImage,
    AnnotationFormatError,
    AnnotationSet,
    AnnotationShape,
)
from coral_core.labels.taxonomy import BACKGROUND_NAME, Taxonomy

FORMAT = "coralnet-csv"
NAME_COLUMN = "Name"
ROW_COLUMN = "Row"
COLUMN_COLUMN = "Column"
LABEL_COLUMNS = ("Label", "Label code")
_LISTED = 8  # how many unknown codes a message names


def looks_like_coralnet_csv(head: str) -> bool:
    """Whether a file's first line is a CoralNet annotation CSV header."""
    columns = {cell.strip().lower() for cell in next(csv.reader([head]), [])}
    return {"name", "row", "column"} <= columns and bool(
        columns & {label.lower() for label in LABEL_COLUMNS}
    )


def read_coralnet_csv(path: str | Path, subset: str | None = None) -> AnnotationSet:
    """Read a CoralNet annotation CSV; ``subset`` is given to every image.

    Raises:
        AnnotationFormatError: a missing file, a missing column, or a row whose position is
            not a non-negative integer (the message names the line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationFormatError(f"CoralNet CSV {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationFormatError(f"CoralNet CSV {path} cannot be read ({err})") from None
    return parse_coralnet_csv(text, str(path), subset)


def parse_coralnet_csv(text: str, source: str, subset: str | None = None) -> AnnotationSet:
    """Parse the text of a CoralNet annotation CSV (see the module docstring)."""
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip() for cell in next(reader, [])]
    by_lower = {cell.lower(): index for index, cell in enumerate(header)}
    label_column = next(
        (by_lower[name.lower()] for name in LABEL_COLUMNS if name.lower() in by_lower), None
    )
    required = (NAME_COLUMN, ROW_COLUMN, COLUMN_COLUMN)
    missing = [name for name in required if name.lower() not in by_lower]
    if missing or label_column is None:
        absent = missing + ([] if label_column is not None else ["Label"])
        raise AnnotationFormatError(
            f"{source} is not a CoralNet annotation CSV: it has no {', '.join(absent)} "
            f"column (its header: {', '.join(header[:10]) or 'empty'}); export it from "
            "CoralNet with Export > Annotations, CSV"
        )
    name_at, row_at, column_at = (by_lower[name.lower()] for name in required)
    positional = {name_at, row_at, column_at, label_column}
    extra = [(index, name) for index, name in enumerate(header) if index not in positional]

    order: list[str] = []
    rows_of: dict[str, list[tuple[float, float, str, dict[str, str]]]] = {}
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        line = reader.line_num
        if len(cells) < len(header):
            raise AnnotationFormatError(
                f"{source}, line {line}: {len(cells)} fields where the header has "
                f"{len(header)}; every row needs a value (maybe empty) for every column"
            )
        name = cells[name_at].strip()
        code = cells[label_column].strip()
        if not name or not code:
            raise AnnotationFormatError(
                f"{source}, line {line}: the {'Name' if not name else 'Label'} is empty"
            )
        row = _pixel_index(cells[row_at], "Row", source, line)
        column = _pixel_index(cells[column_at], "Column", source, line)
        if name not in rows_of:
            order.append(name)
            rows_of[name] = []
        fields = {column_name: cells[index].strip() for index, column_name in extra}
        rows_of[name].append((column + 0.5, row + 0.5, code, fields))

    images = tuple(_image(name, rows_of[name], subset) for name in order)
    codes = tuple(dict.fromkeys(shape.label for image in images for shape in image.shapes))
    return AnnotationSet(source=source, format=FORMAT, images=images, labels=codes)


def _pixel_index(text: str, column: str, source: str, line: int) -> int:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or not value.is_integer():
        raise AnnotationFormatError(
            f"{source}, line {line}: {column} must be a pixel index (0 or a positive "
            f"integer), got {text!r}"
        )
    return int(value)


def _image(
    name: str, rows: list[tuple[float, float, str, dict[str, str]]], subset: str | None
) -> AnnotatedImage:
    columns = rows[0][3].keys()
    constant = {c for c in columns if len({fields[c] for *_, fields in rows}) == 1}
    shapes = tuple(
        AnnotationShape(
            label=code,
            kind="points",
            path=np.array([[x, y]], dtype=np.float64),
            shape_id=index,
            attributes={c: v for c, v in fields.items() if c not in constant and v},
        )
        for index, (x, y, code, fields) in enumerate(rows)
    )
    metadata = {c: rows[0][3][c] for c in columns if c in constant and rows[0][3][c]}
    return AnnotatedImage(
        name=name, width=0, height=0, shapes=shapes, subset=subset, metadata=metadata
    )


def read_label_codes(path: str | Path) -> dict[str, str]:
    """A label-code mapping file: CSV ``code,class`` rows, or a YAML/JSON ``{code: class}``.

    Raises:
        AnnotationFormatError: a missing or malformed file, or a code mapped twice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationFormatError(f"label-code mapping {path} does not exist") from None
    if path.suffix.lower() in {".yml", ".yaml", ".json"}:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise AnnotationFormatError(f"label-code mapping {path} is not YAML: {err}") from None
        if not isinstance(data, Mapping) or not all(
            isinstance(k, str | int) and isinstance(v, str) for k, v in data.items()
        ):
            raise AnnotationFormatError(
                f"label-code mapping {path} must map codes to class names, e.g. 'Porit: Porites'"
            )
        return {str(code).strip(): target.strip() for code, target in data.items()}
    mapping: dict[str, str] = {}
    for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in cells]
        if not any(cells):
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise AnnotationFormatError(
                f"{path}, line {number}: expected 'code,class', got {','.join(cells)!r}"
            )
        if number == 1 and cells[1].lower() in {"class", "class name"}:
            continue
        code, target = cells[0], cells[1]
        if code in mapping and mapping[code] != target:
            raise AnnotationFormatError(
                f"{path}, line {number}: code {code!r} is mapped twice "
                f"({mapping[code]!r} and {target!r}); keep one"
            )
        mapping[code] = target
    return mapping


def map_label_codes(
    annotations: AnnotationSet, codes: Mapping[str, str], taxonomy: Taxonomy | None = None
) -> AnnotationSet:
    """``annotations`` with each point's label code replaced by its class name.

    A code maps through ``codes``; a code with no entry stays as it is, which is right when it
    already is a class name. With a ``taxonomy``, every resulting label must resolve to one of
    its classes (and becomes that class's name) or be ``background`` (sand, rock, ...: the
    mask's background value); without one, the labels are checked later
    (``coralseg prepare``). The original code stays on each point as ``label_code``.

    Raises:
        AnnotationFormatError: codes that name no class, listed in one sentence with their
            point counts.
    """
    counts: Counter = Counter()
    resolved: dict[str, str | None] = {}
    for image in annotations.images:
        for shape in image.shapes:
            code = shape.label
            counts[code] += 1
            if code not in resolved:
                target: str | None = codes.get(code, code)
                if target.strip().lower() == BACKGROUND_NAME:
                    target = BACKGROUND_NAME
                elif taxonomy is not None:
                    target = taxonomy.resolve(target)
                resolved[code] = target
    unknown = [(code, n) for code, n in counts.most_common() if resolved[code] is None]
    if unknown:
        listed = ", ".join(f"{code!r} ({n})" for code, n in unknown[:_LISTED])
        more = f" and {len(unknown) - _LISTED} more" if len(unknown) > _LISTED else ""
        where = f"taxonomy {taxonomy.name!r}" if taxonomy is not None else "the taxonomy"
        raise AnnotationFormatError(
            f"{len(unknown)} label codes of {annotations.source} name no class of {where}: "
            f"{listed}{more}; add a line 'code,class' for each to the label-code mapping",
            settings=("label_codes",),
        )
    images = tuple(
        replace(
            image,
            shapes=tuple(
                replace(
                    shape,
                    label=resolved[shape.label],
                    attributes={**shape.attributes, "label_code": shape.label},
                )
                for shape in image.shapes
            ),
        )
        for image in annotations.images
    )
    labels = tuple(dict.fromkeys(str(resolved[code]) for code in annotations.labels))
    return replace(annotations, images=images, labels=labels)
