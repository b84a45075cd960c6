"""CPCe point files (``.cpc``, Coral Point Count with Excel extensions, Kohler & Gill 2006).

A ``.cpc`` file holds one image's point survey as comma-separated lines (the layout
CoralNet's CPCe upload reads):

1. ``"code file","image file",W,H,display W,display H``: the image path (Windows) and its
   size in CPCe units (15 to a pixel at 96 DPI, other values at other DPIs);
2. four lines of the annotation area's corners ``x,y``;
3. the number of points N;
4. N lines ``x,y``: each point's position in CPCe units (x right, y down);
5. N lines ``"point id","label code","Notes","notes"``;
6. optionally up to 28 header lines (site, transect, ...), kept as the image's metadata.

Coordinates stay in CPCe units (``in_photo_pixels=False``): the import scales them by the
photo's size over ``W x H`` (:func:`coral_core.formats.annotations.model.fit_to_photo`).
The image is matched by its file name.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path, PureWindowsPath

import numpy as np

from coral_core.formats.annotations.model import (
    AnnotatedImage,
    AnnotationFormatError,
    AnnotationSet,
    AnnotationShape,
)

FORMAT = "cpce"
SUFFIX = ".cpc"
_CORNERS = 4


def read_cpc(path: str | Path, subset: str | None = None) -> AnnotationSet:
    """Read one ``.cpc`` file; ``subset`` is given to its image.

    Raises:
        AnnotationFormatError: a missing file or a line that breaks the layout (named).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationFormatError(f"CPCe file {path} does not exist") from None
    # CPCe is Windows software: its files are in the ANSI code page, not always UTF-8.
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return parse_cpc(text, str(path), subset)


def parse_cpc(text: str, source: str, subset: str | None = None) -> AnnotationSet:
    """Parse the text of a ``.cpc`` file (see the module docstring)."""
    lines = [cells for cells in csv.reader(io.StringIO(text)) if any(c.strip() for c in cells)]
    position = 0

    def take(count: int, what: str) -> list[str]:
        nonlocal position
        if position >= len(lines):
            raise AnnotationFormatError(
                f"{source} ends before {what} (line {position + 1}); is it a whole .cpc file?"
            )
        cells = [cell.strip() for cell in lines[position]]
        position += 1
        if len(cells) < count:
            raise AnnotationFormatError(
                f"{source}, line {position}: {what} needs {count} comma-separated values, "
                f"got {len(cells)}"
            )
        return cells

    first = take(4, "the image path and size")
    image_path = first[1]
    width = _number(first[2], "image width", source, 1)
    height = _number(first[3], "image height", source, 1)
    if width <= 0 or height <= 0:
        raise AnnotationFormatError(f"{source}, line 1: the image size must be positive")
    for _ in range(_CORNERS):
        take(2, "an annotation-area corner")
    count_text = take(1, "the number of points")[0]
    if not count_text.isdigit() or int(count_text) == 0:
        raise AnnotationFormatError(
            f"{source}, line {position}: expected the number of points, got {count_text!r}"
        )
    count = int(count_text)
    xy = []
    for _ in range(count):
        cells = take(2, "a point position")
        xy.append(
            (
                _number(cells[0], "x", source, position),
                _number(cells[1], "y", source, position),
            )
        )
    shapes = []
    for index in range(count):
        cells = take(2, "a point's label line")
        code = cells[1]
        if not code:
            continue  # a point CPCe left unlabelled
        notes = cells[3] if len(cells) > 3 else ""
        shapes.append(
            AnnotationShape(
                label=code,
                kind="points",
                path=np.array([xy[index]], dtype=np.float64),
                shape_id=index,
                attributes={"cpce_point": cells[0], **({"notes": notes} if notes else {})},
            )
        )
    headers = [lines[i][0].strip() for i in range(position, len(lines)) if lines[i][0].strip()]
    metadata = {f"cpce_header_{i + 1}": value for i, value in enumerate(headers)}
    metadata["cpce_image_path"] = image_path
    image = AnnotatedImage(
        name=PureWindowsPath(image_path).name,
        width=round(width),
        height=round(height),
        shapes=tuple(shapes),
        subset=subset,
        metadata=metadata,
        in_photo_pixels=False,
    )
    labels = tuple(dict.fromkeys(shape.label for shape in shapes))
    return AnnotationSet(source=source, format=FORMAT, images=(image,), labels=labels)


def _number(text: str, what: str, source: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise AnnotationFormatError(
            f"{source}, line {line}: the {what} must be a number, got {text!r}"
        ) from None
    if value < 0:
        raise AnnotationFormatError(f"{source}, line {line}: the {what} is negative ({text})")
    return value
