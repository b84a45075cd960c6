"""Point-count emulation: the cover a point survey of a dense mask would report, with its error.

Reef monitoring has long estimated cover by points (CPCe, CoralNet, ReefCloud: 25 to 100
per photo): cover of a class = the share of scored points that fall on it. To compare
coralseg's dense cover with such a historical series, :func:`point_survey_cover` scores a
dense label mask (annotated or predicted) as a point survey would, many times over with
fresh points, and reports the mean estimate and its sampling error: the standard deviation
of the estimates over the draws, i.e. the standard error of one survey of that many points.
It shrinks as 1 / sqrt(points).

Methods, as the survey tools offer them:

* ``random``: points uniform over the photo (or its region of interest);
* ``stratified``: the photo cut into a grid of about ``points`` equal cells (rows and
  columns in the photo's aspect ratio), one uniform point in each.

Points on pixels no class covers (ignored, unannotated, outside the ROI) are not scored,
as an annotator skips them; cover is over the scored points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from coral_core.ecology.cover import image_cover
from coral_core.ecology.legend import ClassLegend

SurveyMethod = Literal["random", "stratified"]
METHODS = ("random", "stratified")


@dataclass(frozen=True, eq=False)
class PointSurveyCover:
    """Point-survey estimates of one mask's cover.

    Attributes:
        classes: class names, the legend's order.
        method: ``random`` or ``stratified``.
        points: points per survey (for ``stratified``, the grid's cells).
        draws: ``(R, C)`` float64 percent cover per class of each of R surveys; NaN in a
            survey that scored no point.
        exact: ``(C,)`` float64 percent cover of the dense mask (over annotated pixels).
    """

    classes: tuple[str, ...]
    method: str
    points: int
    draws: np.ndarray
    exact: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """``(C,)`` mean estimate over the draws (percent)."""
        return np.nanmean(self.draws, axis=0)

    @property
    def standard_error(self) -> np.ndarray:
        """``(C,)`` standard error of one survey (percentage points): the estimates' standard
        deviation over the draws."""
        return np.nanstd(self.draws, axis=0, ddof=1)

    def rows(self) -> list[dict[str, object]]:
        """One row per class: dense cover, mean point estimate, its SE, in percent."""
        return [
            {
                "class": name,
                "dense_cover": float(self.exact[i]),
                "point_cover": float(self.mean[i]),
                "point_se": float(self.standard_error[i]),
                "points": self.points,
                "method": self.method,
                "draws": int(self.draws.shape[0]),
            }
            for i, name in enumerate(self.classes)
        ]


def point_survey_cover(
    mask: np.ndarray,
    legend: ClassLegend,
    points: int,
    *,
    draws: int = 200,
    method: SurveyMethod = "random",
    seed: int = 0,
    roi: np.ndarray | None = None,
) -> PointSurveyCover:
    """Score ``mask`` as ``draws`` point surveys of ``points`` points each.

    Args:
        mask: ``(H, W)`` uint8 or uint16 label mask in the legend's values.
        legend: what the values mean (its ignore values are not scored).
        points: points per survey, 1 or more.
        draws: surveys to simulate, 2 or more (for the SE).
        method: ``random`` or ``stratified`` (see the module docstring).
        seed: seed of the draws (same seed, same estimates).
        roi: optional ``(H, W)`` bool region of interest; points outside it are not scored.

    Raises:
        ValueError: bad counts or method; CoralsegError: values the legend does not know.
    """
    if points < 1:
        raise ValueError(f"a point survey needs 1 or more points, got {points}")
    if draws < 2:
        raise ValueError(f"the sampling error needs 2 or more draws, got {draws}")
    if method not in METHODS:
        raise ValueError(f"unknown point survey method {method!r}; use {', '.join(METHODS)}")
    exact = image_cover(mask, legend, roi).cover_percent
    mask = np.asarray(mask)
    height, width = mask.shape
    rng = np.random.default_rng(seed)
    if method == "random":
        rows = rng.integers(0, height, size=(draws, points))
        cols = rng.integers(0, width, size=(draws, points))
        count = points
    else:
        grid_rows = max(1, round(np.sqrt(points * height / width)))
        grid_cols = max(1, round(points / grid_rows))
        count = grid_rows * grid_cols
        cell_r = np.repeat(np.arange(grid_rows), grid_cols)
        cell_c = np.tile(np.arange(grid_cols), grid_rows)
        offset_r = rng.random((draws, count))
        offset_c = rng.random((draws, count))
        rows = np.minimum(((cell_r + offset_r) * height / grid_rows).astype(np.int64), height - 1)
        cols = np.minimum(((cell_c + offset_c) * width / grid_cols).astype(np.int64), width - 1)
    values = mask[rows, cols].astype(np.int64)
    position = np.full(int(values.max()) + 1, -1, np.int64)
    known = [v for v in legend.values if v < position.size]
    position[known] = [legend.values.index(v) for v in known]
    class_of = position[values]
    if roi is not None:
        class_of[~np.asarray(roi, dtype=bool)[rows, cols]] = -1
    classes = len(legend.names)
    hits = np.zeros((draws, classes), np.int64)
    for c in range(classes):
        hits[:, c] = (class_of == c).sum(axis=1)
    scored = hits.sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(scored > 0, hits / scored * 100.0, np.nan)
    return PointSurveyCover(legend.names, method, count, percent, exact)
