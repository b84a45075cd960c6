"""Shapes the tests draw colonies with."""

from __future__ import annotations

import numpy as np


def disc_polygon(cx: float, cy: float, r: float, corners: int = 24) -> np.ndarray:
    """A circle of centre ``(cx, cy)`` and radius ``r`` as a ``(corners, 2)`` float64 array of
    ``(x, y)`` vertices, in whatever units the centre is given (pixels or image fractions)."""
    angles = np.linspace(0, 2 * np.pi, corners, endpoint=False)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1)
