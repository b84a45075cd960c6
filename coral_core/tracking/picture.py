"""A picture of a pair of visits: the same colour for a colony in both, its fate marked.

Before on the left, after on the right, at one height. Each colony is tinted and outlined
in the colour of its colony id (so a colony keeps its colour across the visits) and marked
at its centroid with its fate's code (:data:`FATE_CODES`; ``!`` added for a genus change).
Deaths are marked on the before image, everything else on the after image. A key of the
codes runs along the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from coral_core.labels.palette import MAX_COLORS, distinct_colors
from coral_core.tracking.colonies import TrackedColony
from coral_core.tracking.fates import ColonyFates

FATE_CODES = {
    "persisted": "P",
    "partial_mortality": "M",
    "death": "X",
    "recruitment": "R",
    "fusion": "F",
    "fission": "S",
}
_KEY = "P persisted  M partial mortality  X death  R recruit  F fusion  S fission  ! genus change"
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_COLORS = np.array(distinct_colors(MAX_COLORS), dtype=np.float64)


def _color(colony_id: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in _COLORS[(colony_id - 1) % len(_COLORS)])  # type: ignore[return-value]


def _paint(image: np.ndarray, colonies: Sequence[TrackedColony], ids: Sequence[int]) -> None:
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for colony, colony_id in zip(colonies, ids, strict=True):
        x, y, w, h = colony.bbox
        window = image[y : y + h, x : x + w]
        color = np.array(_color(colony_id), dtype=np.float64)
        window[colony.mask] = (0.5 * window[colony.mask] + 0.5 * color).astype(np.uint8)
        contours, _ = cv2.findContours(
            np.pad(colony.mask.view(np.uint8), 1), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(image, contours, -1, _color(colony_id), thickness, offset=(x - 1, y - 1))


def _mark(image: np.ndarray, colony: TrackedColony, text: str) -> None:
    ys, xs = np.nonzero(colony.mask)
    scale = max(0.4, max(image.shape[:2]) / 900)
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 2)
    origin = (int(xs.mean() + colony.left - tw / 2), int(ys.mean() + colony.top + th / 2))
    cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(image, text, origin, _FONT, scale, (255, 255, 255), 2, cv2.LINE_AA)


def pair_picture(
    before_image: np.ndarray,
    after_image: np.ndarray,
    before: Sequence[TrackedColony],
    after: Sequence[TrackedColony],
    fates: ColonyFates,
    height: int = 600,
) -> np.ndarray:
    """The picture (module docstring) as ``(height + key, W, 3)`` uint8 RGB.

    Args:
        before_image, after_image: ``(H, W, 3)`` uint8 RGB photos (or renderings of the
            masks) of the two visits, in the colonies' pixel grids.
        height: the height both halves are scaled to, pixels.
    """
    left, right = before_image[..., :3].copy(), after_image[..., :3].copy()
    _paint(left, before, fates.before_ids)
    _paint(right, after, fates.after_ids)
    for link in fates.links:
        code = FATE_CODES.get(link.fate)
        if code is None:
            continue
        code += "!" if link.genus_changed else ""
        if link.fate == "death" and link.before is not None:
            _mark(left, before[link.before], code)
        elif link.after is not None:
            _mark(right, after[link.after], code)
    halves = [
        cv2.resize(half, (round(half.shape[1] * height / half.shape[0]), height),
                   interpolation=cv2.INTER_AREA)
        for half in (left, right)
    ]  # fmt: skip
    gap = np.full((height, 8, 3), 255, np.uint8)
    top = np.concatenate([halves[0], gap, halves[1]], axis=1)
    key = np.full((34, top.shape[1], 3), 255, np.uint8)
    scale = min(0.6, top.shape[1] / (len(_KEY) * 13))
    cv2.putText(key, _KEY, (8, 23), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([top, key], axis=0)
