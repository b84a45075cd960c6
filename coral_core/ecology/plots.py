"""Plots of cover and colonies, as PNG files (matplotlib's Agg canvas, no display needed).

Figures are built on :class:`matplotlib.figure.Figure` directly, so plotting neither needs
a display nor touches pyplot's global state; each PNG is written atomically. Classes keep
their taxonomy colours (RGB triples ``0..255``).

* :func:`plot_cover_by_group`: one stacked bar per group, its mean percent cover per class;
* :func:`plot_colony_sizes`: a histogram of colony areas per class, on logarithmic size
  bins (colony sizes span orders of magnitude);
* :func:`plot_cover_agreement`: predicted against annotated cover per image, one panel per
  class, with the 1:1 line and the class's mean absolute error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

from coral_core.atomic import atomic_path
from coral_core.labels.palette import RGB

DPI = 100
MAX_PANELS_PER_ROW = 4


def _rgb(color: RGB) -> tuple[float, float, float]:
    return (color[0] / 255.0, color[1] / 255.0, color[2] / 255.0)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=DPI)
    return path


def _panels(count: int) -> tuple[int, int]:
    columns = min(MAX_PANELS_PER_ROW, max(1, count))
    return math.ceil(count / columns), columns


def plot_cover_by_group(
    groups: Sequence[str],
    classes: Sequence[str],
    mean_cover: np.ndarray,
    colors: Sequence[RGB],
    path: str | Path,
    title: str = "Mean percent cover per group",
) -> Path:
    """Stacked bars of mean percent cover, one bar per group.

    Args:
        groups: ``G`` group labels (x axis).
        classes, colors: ``C`` class names and their colours (legend, stacking order).
        mean_cover: ``(G, C)`` mean percent cover; NaN rows (groups without annotation)
            are drawn empty.
    """
    values = np.nan_to_num(
        np.asarray(mean_cover, dtype=np.float64).reshape(len(groups), len(classes))
    )
    width = max(5.0, 0.45 * len(groups) + 3.5)
    label_inches = min(3.0, 0.07 * max((len(g) for g in groups), default=1))
    figure = Figure(figsize=(width, 4.5 + label_inches), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(groups))
    bottom = np.zeros(len(groups))
    for c, name in enumerate(classes):
        axes.bar(
            positions,
            values[:, c],
            bottom=bottom,
            color=_rgb(colors[c]),
            label=name,
            edgecolor="white",
            linewidth=0.3,
        )
        bottom += values[:, c]
    axes.set_xticks(
        positions,
        list(groups),
        rotation=45 if len(groups) > 3 else 0,
        ha="right" if len(groups) > 3 else "center",
        rotation_mode="anchor",
    )
    axes.set_ylim(0, 100)
    axes.set_ylabel("Cover (% of annotated area)")
    axes.set_title(title, fontsize=11)
    axes.legend(
        loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False, reverse=True
    )
    return _save(figure, path)


def plot_colony_sizes(
    areas: Mapping[str, np.ndarray],
    colors: Mapping[str, RGB],
    path: str | Path,
    unit: str = "px",
    title: str = "Colony sizes",
) -> Path:
    """Histograms of colony areas, one panel per class, on shared logarithmic bins.

    Args:
        areas: class name -> 1-D array of colony areas (> 0) in ``unit``; classes without
            colonies get no panel (with none at all, one panel says so).
        colors: class name -> colour.
        unit: the unit of ``areas`` for the axis label (``"px"`` or ``"cm²"``).
    """
    if not areas:
        raise ValueError("there are no colony classes to plot")
    sizes = {n: np.asarray(v, dtype=np.float64) for n, v in areas.items()}
    sizes = {n: v[v > 0] for n, v in sizes.items()}
    # Classes without colonies get no panel; with none at all, one empty panel says so.
    names = [n for n, v in sizes.items() if v.size] or [next(iter(sizes))]
    every = np.concatenate([sizes[n] for n in names])
    # Whole decades, so the log axis gets labelled ticks.
    low = 10.0 ** math.floor(math.log10(every.min())) if every.size else 1.0
    high = 10.0 ** math.ceil(math.log10(every.max())) if every.size else 10.0
    if high <= low:
        high = low * 10.0
    bins = np.logspace(math.log10(low), math.log10(high), 21)
    rows, columns = _panels(len(names))
    figure = Figure(figsize=(3.2 * columns, 2.5 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(panels.ravel()):
        if index >= len(names):
            axes.set_visible(False)
            continue
        name = names[index]
        values = sizes[name]
        axes.set_xscale("log")
        if values.size:
            axes.hist(values, bins=bins, color=_rgb(colors[name]), edgecolor="black", linewidth=0.3)
        else:
            axes.text(
                0.5,
                0.5,
                "no colonies",
                ha="center",
                va="center",
                transform=axes.transAxes,
                fontsize=9,
            )
        axes.set_xlim(bins[0], bins[-1])
        # Few ticks: matplotlib lays out every minor tick label of a log axis, which takes
        # seconds over seven decades.
        axes.xaxis.set_major_locator(LogLocator(numticks=6))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        axes.set_title(f"{name} (n={values.size})", fontsize=9)
        axes.set_xlabel(f"area ({unit})", fontsize=8)
        axes.set_ylabel("colonies", fontsize=8)
        axes.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def plot_cover_agreement(
    annotated: np.ndarray,
    predicted: np.ndarray,
    classes: Sequence[str],
    colors: Sequence[RGB],
    path: str | Path,
    title: str = "Predicted vs annotated cover per image",
) -> Path:
    """Scatter plots of predicted against annotated percent cover, one panel per class.

    Args:
        annotated, predicted: ``(I, C)`` percent cover of the same images.
        classes, colors: the ``C`` classes and their colours.

    Each panel has the 1:1 line (perfect agreement) and the class's mean absolute error in
    percentage points in its title.
    """
    annotated = np.asarray(annotated, dtype=np.float64).reshape(-1, len(classes))
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, len(classes))
    rows, columns = _panels(len(classes))
    figure = Figure(figsize=(2.9 * columns, 2.9 * rows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(panels.ravel()):
        if index >= len(classes):
            axes.set_visible(False)
            continue
        x, y = annotated[:, index], predicted[:, index]
        top = max(5.0, float(np.nanmax(np.concatenate([x, y]), initial=0.0)) * 1.08)
        axes.plot([0, top], [0, top], color="0.5", linewidth=0.8, linestyle="--", zorder=1)
        color = _rgb(colors[index])
        axes.scatter(x, y, s=14, color=color, edgecolors="black", linewidths=0.3, zorder=2)
        mae = float(np.abs(y - x).mean()) if x.size else float("nan")
        axes.set_xlim(0, top)
        axes.set_ylim(0, top)
        axes.set_aspect("equal")
        axes.set_title(f"{classes[index]}\nMAE {mae:.1f} pp, n={x.size}", fontsize=9)
        axes.set_xlabel("annotated cover (%)", fontsize=8)
        axes.set_ylabel("predicted cover (%)", fontsize=8)
        axes.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)
