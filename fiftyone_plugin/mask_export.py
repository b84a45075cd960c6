"""Export a FiftyOne dataset, view or selection as an MMSeg folder (= ``coralseg prepare``).

:func:`export_masks` reads the polylines in bulk (:mod:`.fiftyone_source`) and writes the
folder with :func:`coral_core.training.mmseg_export.export_mmseg_dataset`; the ``export_masks``
operator and ``coralseg prepare`` both call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from coral_core.errors import CoralsegError
from coral_core.labels.taxonomy import MaskEncoding, Taxonomy
from coral_core.training.mmseg_export import ExportSummary, PointMasks, export_mmseg_dataset

from .fiftyone_source import SourceReport, read_export_samples


@dataclass(frozen=True)
class MaskExport:
    """The written folder's summary and what was read from FiftyOne."""

    summary: ExportSummary
    source: SourceReport

    def lines(self) -> list[str]:
        """The report for people, one line each."""
        summary = self.summary
        out = [f"wrote {summary.out_dir} in {summary.seconds:.1f}s"]
        out += [f"  {split:<5} {count} images" for split, count in summary.samples.items()]
        if self.source.points:
            with_points = ", ".join(
                f"{split} {n}" for split, n in summary.point_samples.items() if n
            )
            out.append(f"  {self.source.points} point labels on images: {with_points}")
        if summary.report.dropped:
            dropped = ", ".join(f"{n} {reason}" for reason, n in summary.report.dropped.items())
            out.append(f"  dropped shapes: {dropped}")
        if summary.report.unknown_labels:
            skipped = ", ".join(
                f"{label} ({n})" for label, n in summary.report.unknown_labels.items()
            )
            out.append(f"  skipped unknown labels: {skipped}")
        if self.source.without_split:
            out.append(
                f"  {len(self.source.without_split)} sample(s) without a train/val/test tag "
                "left out (tag them, or give split ratios)"
            )
        return out


def export_masks(
    samples,
    out: str | Path,
    taxonomy: Taxonomy,
    *,
    field: str = "gt_polylines",
    background_is_ignore: bool = False,
    split_ratios: Mapping[str, float] | None = None,
    seed: int = 0,
    size: int | None = None,
    overwrite: bool = False,
    skip_unknown: bool = False,
    workers: int | None = None,
    progress: bool = False,
    points_field: str | None = None,
    points: PointMasks | None = None,
) -> MaskExport:
    """Rasterize the polylines of ``samples`` into ``out`` (the MMSeg layout).

    Args:
        samples: a FiftyOne dataset or view.
        out: the folder to write (appears only once complete).
        taxonomy: classes to export (e.g. ``coral_core.labels.taxonomy.get_taxonomy("eilat")``).
        field: the ``fo.Polylines`` field.
        background_is_ignore: background pixels get 255 (ignored in training).
        split_ratios: split untagged samples, e.g. ``{"train": 0.8, "val": 0.2}``.
        size: resize so the long side is ``size`` pixels.
        overwrite: replace an existing folder.
        skip_unknown: drop labels the taxonomy does not know instead of stopping.
        workers: processes (default: all CPUs).
        progress: show a terminal progress bar.
        points_field: an ``fo.Keypoints`` field of point labels to draw as well (photos
            with points and no polylines are labelled by their points only).
        points: how points are drawn (sparse discs or superpixel densification).

    Raises:
        CoralsegError: no sample has a split, unknown labels, an existing folder, ...
    """
    encoding = MaskEncoding(taxonomy, background_is_ignore=background_is_ignore)
    samples_out, source = read_export_samples(samples, field, split_ratios, seed, points_field)
    if not samples_out:
        raise CoralsegError(
            "no sample has a split tag (train/val/test); tag them or give split ratios "
            "such as 0.8,0.1,0.1"
            if source.without_split
            else "there are no samples to export: the dataset or view is empty"
        )
    summary = export_mmseg_dataset(
        samples_out,
        out,
        encoding,
        size=size,
        overwrite=overwrite,
        unknown="skip" if skip_unknown else "error",
        workers=workers,
        source={
            "fiftyone_dataset": samples._dataset.name,
            "field": field,
            "samples_without_split": len(source.without_split),
            "randomly_split": dict(source.randomly_split),
            **({"points_field": points_field} if points_field else {}),
        },
        progress=progress,
        points=points,
    )
    return MaskExport(summary, source)
