"""Tidy tables of colony fates: one row per link, and per-class and per-plot summaries.

``area_before_px``/``area_after_px`` are each colony's pixels in its own image, and
``area_*_cm2`` the same in cm² where that visit has a scale (pixels per cm). Growth is given
for one-to-one links (``persisted`` and ``partial_mortality``) and compares the *common*
areas (:mod:`.linking`: the part of each colony the other image shows too, both in
after-image pixels, ``area_*_common_px``), so neither a camera closer to the reef nor a
colony cut by the edge of one photo reads as growth: ``growth_percent`` = (after - before)
/ before common area, ``growth_cm2`` = after - before common area in cm² (with the after
visit's scale, else the before visit's carried over). Summaries give, per group, the links
of each fate and the mean growth (percent and cm²) with its standard error
``SD / sqrt(n)`` over the one-to-one links (blank for n < 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from coral_core.tracking.alignment import Alignment
from coral_core.tracking.colonies import TrackedColony
from coral_core.tracking.fates import FATES, ColonyFates
from coral_core.tracking.linking import Linking

GROWTH_FATES = ("persisted", "partial_mortality")
LINK_COLUMNS = (
    "plot",
    "before_image",
    "after_image",
    "colony_id",
    "after_colony_id",
    "fate",
    "class_before",
    "class_after",
    "genus_changed",
    "iou",
    "area_before_px",
    "area_after_px",
    "area_before_common_px",
    "area_after_common_px",
    "area_before_cm2",
    "area_after_cm2",
    "growth_cm2",
    "growth_percent",
    "centroid_before_x",
    "centroid_before_y",
    "centroid_after_x",
    "centroid_after_y",
)


def _centroid(colony: TrackedColony) -> tuple[float, float]:
    ys, xs = np.nonzero(colony.mask)
    return float(xs.mean() + colony.left + 0.5), float(ys.mean() + colony.top + 0.5)


def link_rows(
    plot: str,
    images: tuple[str, str],
    before: Sequence[TrackedColony],
    after: Sequence[TrackedColony],
    linking: Linking,
    fates: ColonyFates,
    scales: tuple[float | None, float | None] = (None, None),
) -> list[dict[str, object]]:
    """One row per link (columns :data:`LINK_COLUMNS`; see the module docstring).

    Args:
        plot: the plot's name; ``images``: the before and after image names.
        scales: pixels per cm of the before and after images (None: unknown).
    """
    before_scale, after_scale = scales
    rows = []
    for link in fates.links:
        row: dict[str, object] = dict.fromkeys(LINK_COLUMNS, "")
        row |= {
            "plot": plot,
            "before_image": images[0],
            "after_image": images[1],
            "colony_id": link.colony_id,
            "after_colony_id": "" if link.after_colony_id is None else link.after_colony_id,
            "fate": link.fate,
            "genus_changed": int(link.genus_changed),
            "iou": round(link.iou, 4),
        }
        before_cm2 = after_cm2 = None
        if link.before is not None:
            common = linking.before_common[link.before]
            before_cm2 = _visit_columns(row, "before", before[link.before], common, before_scale)
        if link.after is not None:
            common = linking.after_common[link.after]
            after_cm2 = _visit_columns(row, "after", after[link.after], common, after_scale)
        row["area_before_cm2"] = "" if before_cm2 is None else round(before_cm2, 4)
        row["area_after_cm2"] = "" if after_cm2 is None else round(after_cm2, 4)
        if link.fate in GROWTH_FATES and link.before is not None and link.after is not None:
            common_before = float(linking.before_common[link.before])
            change = float(linking.after_common[link.after]) - common_before
            row["growth_percent"] = round(100 * change / common_before, 3)
            per_pixel = _cm2_per_after_pixel(before[link.before], link.before, linking, scales)
            if per_pixel is not None:
                row["growth_cm2"] = round(change * per_pixel, 4)
        rows.append(row)
    return rows


def _cm2_per_after_pixel(
    colony: TrackedColony,
    index: int,
    linking: Linking,
    scales: tuple[float | None, float | None],
) -> float | None:
    """cm² of one after-image pixel: from the after scale, else the before scale carried
    over by the alignment's area change at the colony."""
    before_scale, after_scale = scales
    if after_scale:
        return 1.0 / after_scale**2
    if before_scale:
        return colony.area / float(linking.aligned_area[index]) / before_scale**2
    return None


def _mean_se(values: list[float]) -> tuple[object, object]:
    if not values:
        return "", ""
    mean = round(float(np.mean(values)), 4)
    if len(values) < 2:
        return mean, ""
    return mean, round(float(np.std(values, ddof=1) / math.sqrt(len(values))), 4)


def summary_rows(rows: Sequence[Mapping[str, object]], by: str) -> list[dict[str, object]]:
    """Per value of ``by`` (``"plot"`` or ``"class"``): links per fate, mean growth and SE.

    ``by="class"`` groups by ``class_before`` (a recruit's by ``class_after``).
    """
    if by not in ("plot", "class"):
        raise ValueError(f"summaries are per plot or per class, got {by!r}")
    groups: dict[str, list[Mapping[str, object]]] = {}
    for row in rows:
        key = row["plot"] if by == "plot" else (row["class_before"] or row["class_after"])
        groups.setdefault(str(key), []).append(row)
    summary = []
    for key in sorted(groups):
        members = groups[key]
        out: dict[str, object] = {by: key, "links": len(members)}
        out |= {f"n_{fate}": sum(r["fate"] == fate for r in members) for fate in FATES}
        out["n_genus_changed"] = sum(int(r["genus_changed"]) for r in members)
        percents = [float(r["growth_percent"]) for r in members if r["growth_percent"] != ""]
        areas = [float(r["growth_cm2"]) for r in members if r["growth_cm2"] != ""]
        out["n_growth"] = len(percents)
        out["mean_growth_percent"], out["se_growth_percent"] = _mean_se(percents)
        out["mean_growth_cm2"], out["se_growth_cm2"] = _mean_se(areas)
        summary.append(out)
    return summary


def _visit_columns(row: dict, visit: str, colony, common: float, scale) -> float | None:
    """Fill ``row``'s columns of one visit's colony (``visit``: "before" or "after");
    its area in cm² where the visit has a scale (pixels per cm), else None."""
    row[f"class_{visit}"] = colony.label
    row[f"area_{visit}_px"] = colony.area
    row[f"area_{visit}_common_px"] = round(float(common), 1)
    row[f"centroid_{visit}_x"], row[f"centroid_{visit}_y"] = (
        round(v, 2) for v in _centroid(colony)
    )
    return colony.area / scale**2 if scale else None


def alignment_row(
    plot: str, before_image: str, after_image: str, alignment: Alignment
) -> dict[str, object]:
    """One row of ``alignment.csv``: how a plot's two images were aligned."""
    return {
        "plot": plot,
        "before_image": before_image,
        "after_image": after_image,
        "method": alignment.method,
        "inliers": "" if alignment.inliers is None else alignment.inliers,
        "matches": "" if alignment.matches is None else alignment.matches,
        "reprojection_error_px": ""
        if alignment.reprojection_error_px is None
        else round(alignment.reprojection_error_px, 3),
        "residual_shift_x": round(alignment.residual_shift[0], 3),
        "residual_shift_y": round(alignment.residual_shift[1], 3),
        "overlap": "" if alignment.overlap is None else round(alignment.overlap, 4),
        "matrix": " ".join(f"{v:.9g}" for v in alignment.matrix.ravel()),
    }
