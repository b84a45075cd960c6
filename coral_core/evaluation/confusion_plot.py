"""Write a confusion matrix as a PNG heat map and as CSV tables.

Matplotlib is driven through :class:`matplotlib.figure.Figure` and the Agg canvas directly,
so plotting here neither needs a display nor changes pyplot's global backend or figures for
other code in the same process.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from coral_core.atomic import atomic_path
from coral_core.evaluation.metrics import check_confusion, normalized_confusion

# Above this many classes the cells are too small for printed values to be legible.
MAX_CLASSES_WITH_VALUES = 20
CELL_INCHES = 0.35
DPI = 100
_NORMALIZE_TITLES = {
    "true": "rows: ground truth, normalised per true class",
    "pred": "columns: predictions, normalised per predicted class",
    "all": "normalised over all pixels",
}
_CORNER = "true \\ predicted"


def counts_csv_path(csv_path: str | os.PathLike[str]) -> Path:
    """Where :func:`save_confusion_matrix` writes the raw counts: ``<stem>_counts.csv``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}_counts.csv")


def save_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    png_path: str | os.PathLike[str],
    csv_path: str | os.PathLike[str],
    normalize: Literal["true", "pred", "all"] = "true",
    title: str | None = None,
) -> tuple[Path, Path, Path]:
    """Save a confusion matrix as a heat map and two CSV tables.

    Args:
        matrix: ``(N, N)`` integer pixel counts, rows ground truth, columns predictions
            (as :func:`coral_core.evaluation.metrics.confusion_matrix` returns).
        class_names: the N class names, used on both axes and as CSV row/column headers.
        png_path: the heat map of the normalised matrix, with a colour bar; values are
            printed in the cells when there are at most ``MAX_CLASSES_WITH_VALUES`` classes.
        csv_path: the normalised matrix: a header row (corner cell, then the predicted class
            names) and one row per true class (its name, then N fractions).
        normalize: ``"true"`` (rows sum to 1), ``"pred"`` (columns sum to 1) or ``"all"``;
            see :func:`coral_core.evaluation.metrics.normalized_confusion`.
        title: the plot title; defaults to one that says how the matrix is normalised.

    Returns:
        ``(png_path, csv_path, counts_path)``; the raw counts go to
        :func:`counts_csv_path` of ``csv_path``, laid out like the normalised table. Each
        file is written to a temporary sibling and renamed, so readers never see half a file.
    """
    matrix = check_confusion(matrix, class_names)
    if normalize not in _NORMALIZE_TITLES:
        raise ValueError(f'normalize must be "true", "pred" or "all", got {normalize!r}')
    names = [str(name) for name in class_names]
    fractions = normalized_confusion(matrix, by=normalize)
    png_path, csv_path = Path(png_path), Path(csv_path)
    counts_path = counts_csv_path(csv_path)

    figure = _heat_map(
        fractions, names, title or f"Confusion matrix ({_NORMALIZE_TITLES[normalize]})"
    )
    _write_atomically(png_path, "wb", lambda f: figure.savefig(f, format="png", dpi=DPI))
    _write_atomically(csv_path, "w", lambda f: _write_table(f, names, fractions, "{:.6f}"))
    _write_atomically(counts_path, "w", lambda f: _write_table(f, names, matrix, "{:d}"))
    return png_path, csv_path, counts_path


def _heat_map(fractions: np.ndarray, names: list[str], title: str) -> Figure:
    count = len(names)
    side = CELL_INCHES * count
    label_inches = 0.08 * max(len(name) for name in names) + 0.8
    figure = Figure(
        figsize=(side + label_inches + 1.5, side + label_inches + 0.8),
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02)
    font_size = 10 if count <= MAX_CLASSES_WITH_VALUES else 8
    positions = np.arange(count)
    axes.set_xticks(positions, names, rotation=60, ha="right", rotation_mode="anchor")
    axes.set_yticks(positions, names)
    axes.tick_params(labelsize=font_size)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("Ground truth")
    axes.set_title(title, fontsize=11)
    if count <= MAX_CLASSES_WITH_VALUES:
        value_size = max(6, 11 - count // 4)
        for row, col in np.ndindex(fractions.shape):
            value = fractions[row, col]
            axes.text(
                col,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=value_size,
                color="white" if value > 0.5 else "black",
            )
    return figure


def _write_table(handle: IO[str], names: list[str], values: np.ndarray, cell: str) -> None:
    writer = csv.writer(handle)
    writer.writerow([_CORNER, *names])
    for name, row in zip(names, values.tolist(), strict=True):
        writer.writerow([name, *(cell.format(value) for value in row)])


def _write_atomically(path: Path, mode: Literal["w", "wb"], write: Callable[[IO], None]) -> None:
    """Write ``path`` through an open handle of a temporary sibling, renamed into place."""
    text = mode == "w"
    with (
        atomic_path(path) as temporary,
        open(
            temporary,
            mode,
            newline="" if text else None,
            encoding="utf-8" if text else None,
        ) as handle,
    ):
        write(handle)
