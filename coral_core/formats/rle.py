"""Run-length encodings of binary masks: COCO's and CVAT's.

Masks are ``HxW`` bool arrays (integer arrays are accepted as input, nonzero = foreground),
indexed ``[row, column]`` with pixel ``(i, j)`` covering ``[j, j + 1) x [i, i + 1)`` as in
:mod:`coral_core.formats.polygons`.

* COCO RLE (pycocotools): ``{"size": [H, W], "counts": str}``, runs over the pixels in
  column-major order starting with background, compressed into a string. The functions here
  return JSON-safe dicts and accept ``counts`` as str, bytes or an uncompressed list of ints.
* CVAT mask shapes (the ``points`` of a REST API shape of type ``"mask"``, as cvat-sdk's
  ``encode_mask`` writes them and CVAT's server reads them):
  ``[r0, r1, ..., rn, left, top, right, bottom]``. The last four numbers are the inclusive
  pixel box the runs cover; the runs alternate background/foreground over the box in
  row-major order, starting with a background run that may be 0, and add up to the box's
  pixel count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from coral_core.formats.polygons import as_binary_mask, check_image_size


def mask_to_coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a mask.

    Args:
        mask: ``HxW`` bool or integer array, nonzero = foreground.

    Returns:
        ``{"size": [H, W], "counts": str}``, JSON-safe.
    """
    binary = as_binary_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(binary, dtype=np.uint8))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode()}


def box_mask_to_coco_rle(
    mask: np.ndarray, left: int, top: int, height: int, width: int
) -> dict[str, Any]:
    """COCO RLE over a whole image of a mask given inside its box, in time ~ the box.

    Args:
        mask: ``hxw`` bool (or integer, nonzero = foreground) mask of the box.
        left, top: the box's first column and row in the image.
        height, width: the image size; the box must lie inside it.

    Returns:
        The same ``{"size": [height, width], "counts": str}`` as :func:`mask_to_coco_rle` of
        the whole-image mask, without building that mask.
    """
    binary = as_binary_mask(mask)
    check_image_size(height, width)
    box_height, box_width = binary.shape
    if left < 0 or top < 0 or left + box_width > width or top + box_height > height:
        raise ValueError(
            f"the {box_width}x{box_height} box at ({left}, {top}) is not inside the "
            f"{width}x{height} image"
        )
    # Column-major, as COCO counts run: pad each column with background above and below, so
    # every foreground run has a start (+1 step) and an end (-1 step) within its column.
    padded = np.zeros((box_height + 2, box_width), dtype=np.int8)
    padded[1:-1] = binary
    steps = np.diff(padded, axis=0).T  # (box_width, box_height + 1)
    columns, rows = np.nonzero(steps)
    linear = (left + columns).astype(np.int64) * height + top + rows
    starts, ends = linear[steps[columns, rows] > 0], linear[steps[columns, rows] < 0]
    if starts.size:
        # Runs that end where the next column's run starts (boxes as tall as the image) join.
        joined = np.flatnonzero(ends[:-1] == starts[1:])
        starts, ends = np.delete(starts, joined + 1), np.delete(ends, joined)
    edges = np.empty(2 * starts.size + 2, dtype=np.int64)
    edges[0], edges[-1] = 0, height * width
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    counts = np.diff(edges).tolist()
    if len(counts) > 1 and counts[-1] == 0:
        counts.pop()  # pycocotools ends on the last run that has pixels
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode()}


def coco_rle_to_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE into an ``HxW`` bool array (C order).

    Args:
        rle: ``{"size": [H, W], "counts": ...}`` with compressed counts (str or bytes) or
            uncompressed counts (a list of ints).

    Raises:
        ValueError: malformed RLE, including runs that do not add up to ``H * W`` pixels
            (pycocotools would return uninitialized memory for too few).
    """
    decoded = mask_utils.decode(_checked_coco_rle(rle))
    return np.ascontiguousarray(decoded, dtype=bool)


def coco_rle_area(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels of a COCO RLE."""
    return int(mask_utils.area(_checked_coco_rle(rle)))


def coco_rle_bbox(rle: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """COCO's box of a COCO RLE: ``(x, y, width, height)`` in pixels; all zeros when empty.

    Unlike :attr:`coral_core.formats.polygons.Polygon.bbox` (corners), this is COCO's
    ``[x, y, w, h]``, covering the foreground pixels' squares.
    """
    x, y, w, h = mask_utils.toBbox(_checked_coco_rle(rle))
    return float(x), float(y), float(w), float(h)


def mask_to_cvat_points(mask: np.ndarray) -> list[int]:
    """CVAT mask-shape ``points`` of a whole-image mask, boxed tightly around its foreground.

    Args:
        mask: ``HxW`` bool or integer array, nonzero = foreground, the size of the image.

    Returns:
        ``[r0, r1, ..., left, top, right, bottom]`` as described in the module docstring.

    Raises:
        ValueError: the mask has no foreground pixel (CVAT has no empty mask shapes).
    """
    binary = as_binary_mask(mask)
    rows = np.flatnonzero(binary.any(axis=1))
    if rows.size == 0:
        raise ValueError("the mask is empty; a CVAT mask shape needs at least one foreground pixel")
    cols = np.flatnonzero(binary.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    flat = binary[top : bottom + 1, left : right + 1].ravel()
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size])))
    if flat[0]:
        runs = np.concatenate(([0], runs))  # the first run is background, here empty
    return [*runs.tolist(), left, top, right, bottom]


def cvat_points_to_mask(points: Sequence[float], height: int, width: int) -> np.ndarray:
    """Decode CVAT mask-shape ``points`` into an ``HxW`` bool mask of the whole image.

    Args:
        points: ``[r0, r1, ..., left, top, right, bottom]`` (module docstring); ints, or
            floats with integer values as CVAT's JSON has them.
        height, width: the image size in pixels.

    Raises:
        ValueError: the points are malformed, the box lies outside the image, or the runs do
            not cover the box exactly; the message says which.
    """
    check_image_size(height, width)
    try:
        values = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("CVAT mask points must be a flat list of numbers") from None
    if values.ndim != 1 or values.size < 5:
        raise ValueError(
            "CVAT mask points must be a flat list of at least one run length followed by "
            f"left, top, right, bottom; got {values.size} numbers"
        )
    if not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise ValueError("CVAT mask points must be whole numbers")
    numbers = values.astype(np.int64)
    runs = numbers[:-4]
    left, top, right, bottom = (int(v) for v in numbers[-4:])
    if not (0 <= left <= right < width and 0 <= top <= bottom < height):
        raise ValueError(
            f"CVAT mask box left={left}, top={top}, right={right}, bottom={bottom} does not "
            f"lie inside the {width}x{height} image (need 0 <= left <= right < width and "
            "0 <= top <= bottom < height)"
        )
    if (runs < 0).any():
        raise ValueError("CVAT mask run lengths must not be negative")
    box_height, box_width = bottom - top + 1, right - left + 1
    if runs.sum() != box_height * box_width:
        raise ValueError(
            f"CVAT mask runs cover {int(runs.sum())} pixels but the box is "
            f"{box_width}x{box_height} = {box_width * box_height} pixels"
        )
    foreground = np.arange(runs.size) % 2 == 1  # runs alternate, background first
    out = np.zeros((height, width), dtype=bool)
    out[top : bottom + 1, left : right + 1] = np.repeat(foreground, runs).reshape(
        box_height, box_width
    )
    return out


def _checked_coco_rle(rle: Mapping[str, Any]) -> dict[str, Any]:
    """The RLE in the form pycocotools takes, after checking it describes exactly H*W pixels."""
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise ValueError('a COCO RLE must be a mapping with "size" and "counts"')
    size = np.asarray(rle["size"])
    if size.shape != (2,) or not np.issubdtype(size.dtype, np.integer) or (size < 0).any():
        raise ValueError(
            f'COCO RLE "size" must be [height, width] (ints >= 0), got {rle["size"]!r}'
        )
    height, width = int(size[0]), int(size[1])
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode()
    if isinstance(counts, bytes):
        runs = _decode_counts_string(counts)
    else:
        runs = np.asarray(counts)
        if runs.ndim != 1 or (runs.size and not np.issubdtype(runs.dtype, np.integer)):
            raise ValueError('COCO RLE "counts" must be a string, bytes or a list of ints')
        runs = runs.astype(np.int64)
    if (runs < 0).any():
        raise ValueError("COCO RLE has a negative run length")
    if runs.sum() != height * width:
        raise ValueError(
            f"COCO RLE runs cover {int(runs.sum())} pixels but its size {height}x{width} has "
            f"{height * width}"
        )
    if isinstance(counts, bytes):
        return {"size": [height, width], "counts": counts}
    return mask_utils.frPyObjects({"size": [height, width], "counts": runs.tolist()}, height, width)


def _decode_counts_string(counts: bytes) -> np.ndarray:
    """Run lengths of a compressed COCO counts string (pycocotools' ``rleFrString``).

    Each run is a little-endian sequence of 5-bit groups in characters ``'0' + c``: bit 0x20
    of ``c`` means another group follows, bit 0x10 of the last group is the sign. From the
    fourth run on, a run is stored as its difference to the run two before it.
    """
    codes = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if codes.size == 0:
        return codes
    if ((codes < 0) | (codes > 63)).any():
        raise ValueError("COCO RLE counts string has characters outside '0'..'o'")
    more = (codes & 0x20) != 0
    if more[-1]:
        raise ValueError("COCO RLE counts string ends in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 7:  # 7 groups hold 35 bits, beyond any image's pixel count
        raise ValueError("COCO RLE counts string has a number too large for a run length")
    shifts = 5 * (np.arange(codes.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((codes & 0x1F) << shifts, starts)
    values -= np.where(codes[ends] & 0x10, 1 << (5 * lengths), 0)
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs
