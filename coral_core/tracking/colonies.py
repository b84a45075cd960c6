"""Colonies as the tracker sees them: a class and the colony's pixels inside its box.

Each colony is kept box-local (a ``(h, w)`` bool mask at ``(left, top)``), so carrying it
into the other visit's pixel grid (:func:`warp_colony`) and comparing it with the colonies
there costs as much as the colony, not the image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from coral_core.ecology.colonies import component_instances
from coral_core.tracking.alignment import Alignment


@dataclass(frozen=True, eq=False)
class TrackedColony:
    """One colony of one visit.

    Attributes:
        label: class name; ``value``: its pixel value.
        mask: ``(h, w)`` bool, the colony's pixels inside its box.
        left, top: the box's first column and row in the image.
    """

    label: str
    value: int
    mask: np.ndarray
    left: int
    top: int

    @property
    def area(self) -> int:
        """Pixels."""
        return int(np.count_nonzero(self.mask))

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the box, pixels."""
        return self.left, self.top, self.mask.shape[1], self.mask.shape[0]


def colonies_from_label_mask(
    mask: np.ndarray,
    colony_values: Iterable[int],
    names: Sequence[str] | dict[int, str],
    connectivity: int = 8,
    min_area: int = 1,
) -> list[TrackedColony]:
    """Colonies of a label mask: connected regions of each colony class's value.

    Args:
        mask: ``(H, W)`` uint8/uint16 class values.
        colony_values: the values of colony classes (others have no colonies).
        names: class name of each value (indexable by value).
        connectivity: 8 or 4. ``min_area``: smaller regions (pixels) are left out.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a label mask must be (H, W), got shape {mask.shape}")
    regions = component_instances(
        mask, {int(value): names[value] for value in colony_values}, connectivity
    )
    return [
        TrackedColony(r.label, r.value, r.mask, r.bbox[0], r.bbox[1])
        for r in regions
        if r.area >= min_area
    ]


def warp_colony(
    colony: TrackedColony, alignment: Alignment, shape: tuple[int, int]
) -> tuple[np.ndarray, int, int, float]:
    """A colony's mask carried into the other visit's pixel grid.

    Args:
        shape: ``(H, W)`` of the other visit's image.

    Returns:
        ``(mask, left, top, area)``: the ``(h, w)`` bool mask inside the image (possibly
        empty), its box's corner, and the colony's full area in the other grid (float
        pixels, including any part that falls outside the image).
    """
    height, width = colony.mask.shape
    to_box = alignment.matrix @ _shift(colony.left, colony.top)
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5],
                        [-0.5, height - 0.5]])  # fmt: skip
    mapped = np.hstack([corners, np.ones((4, 1))]) @ to_box.T
    mapped = mapped[:, :2] / mapped[:, 2:3]
    x0, y0 = np.floor(mapped.min(axis=0)).astype(int)
    x1, y1 = np.ceil(mapped.max(axis=0)).astype(int) + 1
    full_area = colony.area * abs(_jacobian(to_box, np.array([(width - 1) / 2, (height - 1) / 2])))
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, shape[1]), min(y1, shape[0])
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), bool), 0, 0, float(full_area)
    into_window = _shift(-x0, -y0) @ to_box
    warped = cv2.warpPerspective(
        colony.mask.view(np.uint8) * np.uint8(255),
        into_window,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderValue=0,
    )
    return warped >= 128, int(x0), int(y0), float(full_area)


def _shift(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def _jacobian(matrix: np.ndarray, point: np.ndarray) -> float:
    """The area scale of a homography at a point (its Jacobian's determinant)."""
    x, y = point
    w = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2]
    u = matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]
    v = matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]
    du = (matrix[0, :2] * w - u * matrix[2, :2]) / w**2
    dv = (matrix[1, :2] * w - v * matrix[2, :2]) / w**2
    return float(du[0] * dv[1] - du[1] * dv[0])
