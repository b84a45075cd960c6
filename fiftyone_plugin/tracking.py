"""Colony fates between two visits held as FiftyOne views: a shared colony id on the labels.

:func:`track_views` pairs the samples of two views (by a sample field such as ``plot``, or
by file name), aligns each pair's photos (:func:`coral_core.tracking.align_photos`), links
the colonies of a label field (``fo.Detections`` with instance masks, as
``predict_colonies`` writes them, or filled ``fo.Polylines``, as CVAT annotations arrive)
and writes onto every colony label of both visits

* ``<id_attribute>`` (default ``colony_id``): ``"<plot>:<n>"``, the same on the two visits
  of one colony, so filtering the labels on it in the App shows the colony across years;
* ``<id_attribute>_fate`` (default ``colony_id_fate``): its fate (see
  :mod:`coral_core.tracking.fates`).

It returns the tidy link rows and per-plot summaries (links per fate, mean growth in
percent with its SE) of :mod:`coral_core.tracking.tables`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.formats.polygons import Polygon, polygons_to_mask
from coral_core.formats.raster_io import open_image
from coral_core.tracking import (
    TrackedColony,
    align_photos,
    colony_fates,
    link_colonies,
)
from coral_core.tracking.features import colony_fate_names
from coral_core.tracking.tables import link_rows, summary_rows


@dataclass(frozen=True)
class TrackingSummary:
    """What :func:`track_views` did: pairs tracked, labels given an id, link and plot rows."""

    pairs: int
    labels: int
    link_rows: list[dict[str, object]]
    plot_rows: list[dict[str, object]]


def _plot_key(sample, pair_by: str | None) -> str:
    if pair_by:
        value = sample[pair_by] if sample.has_field(pair_by) else None
        if value is None:
            raise CoralsegError(f"sample {sample.filepath} has no {pair_by!r} to pair it by")
        return str(value)
    return os.path.splitext(os.path.basename(sample.filepath))[0]


def _by_plot(view, pair_by: str | None, which: str) -> dict[str, object]:
    samples: dict[str, object] = {}
    for sample in view:
        key = _plot_key(sample, pair_by)
        if key in samples:
            raise CoralsegError(
                f"the {which} view has two samples of plot {key!r}; pair by a field that "
                "names each plot once per visit"
            )
        samples[key] = sample
    return samples


def _labels(sample, field: str) -> list:
    value = sample[field] if sample.has_field(field) else None
    if value is None:
        return []
    if hasattr(value, "detections"):
        return list(value.detections)
    if hasattr(value, "polylines"):
        return list(value.polylines)
    raise CoralsegError(
        f"field {field!r} holds {type(value).__name__}; colonies are fo.Detections with masks "
        "or filled fo.Polylines"
    )


def _colony(label, height: int, width: int, values: dict[str, int]) -> TrackedColony | None:
    """The label as a colony, or None when it covers no pixel."""
    value = values.setdefault(label.label, len(values) + 1)
    if hasattr(label, "bounding_box"):
        if label.mask is None:
            raise CoralsegError(
                f"the detection {label.id} ({label.label}) has no instance mask; track "
                "colonies predicted by predict colonies or annotated as polygons"
            )
        x, y = round(label.bounding_box[0] * width), round(label.bounding_box[1] * height)
        mask = np.asarray(label.mask, bool)
        return TrackedColony(label.label, value, mask, x, y) if mask.any() else None
    rings = [np.asarray(ring, np.float64) * (width, height) for ring in label.points]
    mask = polygons_to_mask([Polygon(rings[0], tuple(rings[1:]))], height, width)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    top, left = int(rows[0]), int(cols[0])
    crop = mask[top : rows[-1] + 1, left : cols[-1] + 1]
    return TrackedColony(label.label, value, crop, left, top)


def _photo(sample) -> np.ndarray:
    with open_image(sample.filepath) as image:
        return image.read()


def track_views(
    before_view,
    after_view,
    labels_field: str,
    pair_by: str | None = None,
    id_attribute: str = "colony_id",
) -> TrackingSummary:
    """Link the colonies of two visits and write the shared id (see the module docstring).

    Args:
        before_view, after_view: FiftyOne views of the first and second visit.
        labels_field: the field of colony labels (Detections with masks, or Polylines).
        pair_by: a sample field naming the plot (None: the file name without extension).
        id_attribute: the label attribute for the id; its fate goes in ``<id>_fate``.

    Raises:
        CoralsegError: nothing pairs up, a field is missing, or two photos do not overlap.
    """
    before_plots = _by_plot(before_view, pair_by, "first")
    after_plots = _by_plot(after_view, pair_by, "second")
    plots = sorted(set(before_plots) & set(after_plots))
    if not plots:
        raise CoralsegError(
            "no plot is in both views; pair the samples by a field that has the same value "
            "on both visits (e.g. plot)"
        )
    rows: list[dict[str, object]] = []
    written = 0
    for plot in plots:
        samples = (before_plots[plot], after_plots[plot])
        photos = [_photo(s) for s in samples]
        values: dict[str, int] = {}
        labels, colonies = [], []
        for sample, photo in zip(samples, photos, strict=True):
            found = [
                (x, _colony(x, *photo.shape[:2], values)) for x in _labels(sample, labels_field)
            ]
            labels.append([label for label, colony in found if colony is not None])
            colonies.append([colony for _, colony in found if colony is not None])
        try:
            alignment = align_photos(photos[0], photos[1])
        except ValueError as err:
            raise CoralsegError(f"plot {plot}: {err}") from None
        linking = link_colonies(
            colonies[0], colonies[1], alignment, photos[1].shape[:2], photos[0].shape[:2]
        )
        fates = colony_fates(colonies[0], colonies[1], linking)
        names = [s.filepath for s in samples]
        rows += link_rows(plot, (names[0], names[1]), colonies[0], colonies[1], linking, fates)
        for visit, sample, visit_labels, ids in zip(
            ("before", "after"), samples, labels, (fates.before_ids, fates.after_ids), strict=True
        ):
            fate_names = colony_fate_names(fates, visit, len(visit_labels))
            _write_ids(visit_labels, ids, fate_names, plot, id_attribute)
            sample.save()
            written += len(visit_labels)
    return TrackingSummary(len(plots), written, rows, summary_rows(rows, "plot"))


def _write_ids(
    labels: Sequence, ids: Sequence[int], fates: Sequence[str], plot: str, attribute: str
) -> None:
    for label, colony_id, fate in zip(labels, ids, fates, strict=True):
        label[attribute] = f"{plot}:{colony_id}"
        label[f"{attribute}_fate"] = fate
