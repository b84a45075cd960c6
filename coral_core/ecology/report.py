"""Write what :func:`~coral_core.ecology.measure.measure_source` measured: tidy CSVs and plots.

:func:`write_cover_report` writes ``cover_per_image.csv``, ``cover_per_group.csv``,
``cover_by_group.png``, the colony tables and size plot, ``skipped_masks.csv`` and, with
predictions, the cover error tables and ``cover_agreement.png`` (each file atomically);
:func:`write_point_survey` writes ``point_survey.csv``; :func:`summary_lines` says what was
measured in a few lines for a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coral_core.ecology.agreement import CoverAgreement, cover_agreement
from coral_core.ecology.colonies import colony_columns, colony_rows
from coral_core.ecology.groups import (
    Grouping,
    colony_summary_rows,
    group_cover,
    group_images,
)
from coral_core.ecology.measure import CoverSettings, MeasuredSource, region_of_interest
from coral_core.ecology.plots import plot_colony_sizes, plot_cover_agreement, plot_cover_by_group
from coral_core.ecology.point_survey import point_survey_cover
from coral_core.ecology.sources import MaskSource
from coral_core.ecology.tables import write_csv
from coral_core.errors import CoralsegError
from coral_core.formats.label_rasters import read_label_mask

# Masks that could not be read, one row each: file, reason.
SKIPPED_CSV = "skipped_masks.csv"
POINT_SURVEY_CSV = "point_survey.csv"


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_cover_report`."""

    written: tuple[Path, ...]
    agreement: CoverAgreement | None = None


def write_cover_report(
    out: Path,
    measured: MeasuredSource,
    fields: Mapping[str, Mapping[str, str]],
    field_names: Sequence[str],
    group_by: Sequence[str],
    predicted: MeasuredSource | None = None,
) -> ReportFiles:
    """Write the tables and plots of a measured source (and its comparison with predictions)."""
    legend = measured.source.legend
    table = measured.table
    scaled = bool(measured.pixels_per_cm)
    written: list[Path] = []
    grouping = _grouping(table.images, fields, group_by)
    agreement = None
    if predicted is not None:
        agreement = cover_agreement(table, predicted.table)
        if not agreement.images:
            raise CoralsegError(
                f"no image of {measured.source.root} has a prediction in "
                f"{predicted.source.root} (images are matched by name, e.g. "
                f"{table.images[0]!r}); compare the predictions of the same images"
            )

    written.append(
        write_csv(
            out / "cover_per_image.csv",
            table.rows(fields, field_names, measured.pixels_per_cm if scaled else None),
        )
    )
    groups = group_cover(table, grouping)
    written.append(write_csv(out / "cover_per_group.csv", groups.rows()))
    labels = [grouping.label(g) for g in range(len(grouping.keys))]
    colors = list(legend.colors)
    written.append(
        plot_cover_by_group(labels, legend.names, groups.mean, colors, out / "cover_by_group.png")
    )

    if measured.colonies is not None:
        written += _write_colonies(out, measured, fields, field_names, grouping)
    skipped = [*measured.skipped, *(predicted.skipped if predicted is not None else ())]
    if skipped:
        rows = [{"file": path, "reason": reason} for path, reason in skipped]
        written.append(write_csv(out / SKIPPED_CSV, rows, ("file", "reason")))

    if predicted is not None and agreement is not None:
        written.append(
            write_csv(out / "cover_error_per_image.csv", agreement.image_rows(fields, field_names))
        )
        written.append(write_csv(out / "cover_error_per_class.csv", agreement.class_rows()))
        agreement_grouping = _grouping(agreement.images, fields, group_by)
        written.append(
            write_csv(out / "cover_error_per_group.csv", agreement.group_rows(agreement_grouping))
        )
        class_colors = [_color(c, measured, predicted) for c in agreement.classes]
        written.append(
            plot_cover_agreement(
                agreement.annotated,
                agreement.predicted,
                agreement.classes,
                class_colors,
                out / "cover_agreement.png",
            )
        )
    return ReportFiles(tuple(written), agreement)


def _write_colonies(
    out: Path,
    measured: MeasuredSource,
    fields: Mapping[str, Mapping[str, str]],
    field_names: Sequence[str],
    grouping: Grouping,
) -> list[Path]:
    """colonies.csv, colonies_per_group.csv and colony_sizes.png."""
    legend = measured.source.legend
    table = measured.table
    colonies = measured.colonies or {}
    scaled = bool(measured.pixels_per_cm)
    written: list[Path] = []
    rows: list[dict[str, object]] = []
    for image in table.images:
        rows += colony_rows(
            image,
            colonies.get(image, ()),
            dict(fields.get(image, {})),
            field_names,
            measured.pixels_per_cm.get(image),
            with_scale_columns=scaled,
        )
    written.append(write_csv(out / "colonies.csv", rows, colony_columns(field_names, scaled)))
    colony_classes = [n for n, c in zip(legend.names, legend.colony, strict=True) if c]
    summary = colony_summary_rows(
        table.images,
        colonies,
        grouping,
        colony_classes,
        dict(zip(table.images, table.roi_pixels.tolist(), strict=True)),
        measured.pixels_per_cm if scaled else None,
    )
    written.append(write_csv(out / "colonies_per_group.csv", summary))
    if colony_classes:
        all_scaled = scaled and all(i in measured.pixels_per_cm for i in table.images)
        areas = {
            name: np.array(
                [
                    c.area / (measured.pixels_per_cm[i] ** 2 if all_scaled else 1.0)
                    for i in table.images
                    for c in colonies.get(i, ())
                    if c.label == name
                ]
            )
            for name in colony_classes
        }
        written.append(
            plot_colony_sizes(
                areas,
                {n: legend.color_of(n) for n in colony_classes},
                out / "colony_sizes.png",
                unit="cm²" if all_scaled else "px",
            )
        )
    return written


def _grouping(
    images: Sequence[str], fields: Mapping[str, Mapping[str, str]], by: Sequence[str]
) -> Grouping:
    try:
        return group_images(images, fields, by)
    except ValueError as err:
        raise CoralsegError(
            f"{err}; group by fields the images have", settings=("group_by",)
        ) from None


def _color(name: str, *sources: MeasuredSource) -> tuple[int, int, int]:
    for measured in sources:
        if name in measured.source.legend.names:
            return measured.source.legend.color_of(name)
    return (128, 128, 128)


def summary_lines(measured: MeasuredSource, top: int = 5) -> list[str]:
    """A few lines for the terminal: images, annotated fraction, top classes, colonies."""
    table = measured.table
    lines = [measured.source.describe()]
    annotated = table.annotated_pixels.sum()
    roi = table.roi_pixels.sum()
    fraction = annotated / roi if roi else 0.0
    pooled = 100.0 * table.pixels.sum(axis=0) / annotated if annotated else np.zeros(0)
    order = np.argsort(-pooled)[:top] if annotated else []
    best = ", ".join(f"{table.classes[j]} {pooled[j]:.1f}%" for j in order if pooled[j] > 0)
    lines.append(f"  annotated: {100 * fraction:.1f}% of the sampled area; cover: {best or 'none'}")
    if measured.colonies is not None:
        count = sum(len(c) for c in measured.colonies.values())
        lines.append(f"  colonies: {count}")
    if measured.skipped:
        lines.append(
            f"  skipped {len(measured.skipped)} unreadable mask(s) (listed in {SKIPPED_CSV}):"
        )
        lines += [f"    {path}: {reason}" for path, reason in measured.skipped]
    if measured.pixels_per_cm:
        values = list(measured.pixels_per_cm.values())
        low, high = min(values), max(values)
        spread = f"{low:.3g}" if math.isclose(low, high) else f"{low:.3g}-{high:.3g}"
        lines.append(f"  scale: {spread} px/cm on {len(values)} of {len(table.images)} image(s)")
    return lines


def write_point_survey(
    out: Path,
    source: MaskSource,
    settings: CoverSettings,
    counts: Sequence[int],
    method: str,
    draws: int,
    seed: int = 0,
) -> Path:
    """Write ``point_survey.csv``: per image, class and point count, the dense cover, the
    mean point-survey estimate and its standard error (percent), over ``draws`` surveys
    (:mod:`coral_core.ecology.point_survey`), inside each image's region of interest."""
    rows = []
    for item in source.items:
        mask, _ = read_label_mask(item.path)
        roi = region_of_interest(*mask.shape, settings, item.name)
        for count in counts:
            survey = point_survey_cover(
                mask, source.legend, count, draws=draws, method=method, seed=seed, roi=roi
            )
            rows += [{"image": item.name, **row} for row in survey.rows()]
    return write_csv(out / POINT_SURVEY_CSV, rows)
