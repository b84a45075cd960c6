"""Tidy tables of colony fates: one row per link, and per-class and per-plot summaries.

Areas are in pixels of each visit's own image, and in cm² where the visit has a scale
(pixels per cm). Growth is given for one-to-one links (``persisted`` and
``partial_mortality``): ``growth_cm2`` = after - before area, ``growth_percent`` = that over
the before area. Without scales the percentage compares the after area with the before
colony's area carried into the after image (``area_before_aligned_px``), so a camera closer
to the reef on the second visit does not read as growth. Summaries give, per group, the
links of each fate and the mean growth (percent and cm²) with its standard error
``SD / sqrt(n)`` over the one-to-one links (blank for n < 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

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
    "area_before_aligned_px",
    "area_after_px",
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
            colony = before[link.before]
            aligned = float(linking.aligned_area[link.before])
            row["class_before"] = colony.label
            row["area_before_px"] = colony.area
            row["area_before_aligned_px"] = round(aligned, 1)
            if before_scale:
                before_cm2 = colony.area / before_scale**2
            elif after_scale:
                before_cm2 = aligned / after_scale**2
            row["centroid_before_x"], row["centroid_before_y"] = (
                round(v, 2) for v in _centroid(colony)
            )
        if link.after is not None:
            colony = after[link.after]
            row["class_after"] = colony.label
            row["area_after_px"] = colony.area
            if after_scale:
                after_cm2 = colony.area / after_scale**2
            row["centroid_after_x"], row["centroid_after_y"] = (
                round(v, 2) for v in _centroid(colony)
            )
        row["area_before_cm2"] = "" if before_cm2 is None else round(before_cm2, 4)
        row["area_after_cm2"] = "" if after_cm2 is None else round(after_cm2, 4)
        if link.fate in GROWTH_FATES and link.before is not None and link.after is not None:
            if before_cm2 is not None and after_cm2 is not None:
                row["growth_cm2"] = round(after_cm2 - before_cm2, 4)
                row["growth_percent"] = round(100 * (after_cm2 - before_cm2) / before_cm2, 3)
            else:
                aligned = float(linking.aligned_area[link.before])
                growth = 100 * (after[link.after].area - aligned) / aligned
                row["growth_percent"] = round(growth, 3)
        rows.append(row)
    return rows


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
