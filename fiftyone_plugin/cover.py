"""Percent cover of the samples' genus masks: per-sample fields and a per-group table.

:func:`cover_samples` reads a ``fo.Segmentation`` field written by coralseg (the refined
mask of ``predict_colonies``, the predictions or rasterized ground truth of
``evaluate_model``), whose taxonomy is recorded on the dataset, and calls
:mod:`coral_core.ecology`: each sample gets ``<prefix>_<class>`` (percent of the annotated
area, background counted as a cover-only class), and the samples are grouped by the values
of some sample fields (site, year, ...) for mean, SD and SE cover per group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coral_core.ecology import ClassLegend, CoverTable, group_cover, group_images, image_cover
from coral_core.errors import CoralsegError
from coral_core.formats.label_rasters import read_label_mask

from .masks import field_encoding


@dataclass(frozen=True)
class CoverSummary:
    """Per-sample cover fields written (class -> field) and per-group rows."""

    fields: dict[str, str]
    group_rows: list[dict[str, object]]


def cover_field(prefix: str, class_name: str) -> str:
    return f"{prefix}_{re.sub(r'[^0-9A-Za-z]+', '_', class_name).strip('_') or 'class'}"


def check_mask_field(dataset, field: str):
    """The encoding recorded for ``field``, else a sentence saying how to get one."""
    encoding = field_encoding(dataset, field)
    if encoding is None:
        raise CoralsegError(
            f"field {field!r} was not written by coralseg (no taxonomy recorded for it); "
            "run predict colonies or evaluate a model first"
        )
    return encoding


def check_group_fields(dataset, group_by: Sequence[str]) -> list[str]:
    """The group-by fields, each a sample field of ``dataset``, else a sentence naming them."""
    missing = [name for name in group_by if not dataset.has_sample_field(name)]
    if missing:
        usable = sorted(
            name
            for name, spec in dataset.get_field_schema().items()
            if type(spec).__name__ in ("StringField", "IntField", "BooleanField")
            and name not in ("id", "filepath")
        )
        raise CoralsegError(
            f"this dataset has no sample field {', '.join(repr(m) for m in missing)} to group "
            f"by; fields it has: {', '.join(usable) or 'none (leave Group by empty)'}"
        )
    return list(group_by)


def check_masks_present(samples, mask_field: str) -> int:
    """How many samples there are, each with a ``mask_field`` mask; else a sentence."""
    total = len(samples)
    if total == 0:
        raise CoralsegError("there are no samples to report on")
    with_mask = len(samples.exists(f"{mask_field}.mask_path"))
    if with_mask < total:
        raise CoralsegError(
            f"{total - with_mask} of the {total} target samples have no {mask_field!r} mask; "
            "run predict colonies on them first, or choose a view of the samples that have one"
        )
    return total


def cover_samples(
    samples, mask_field: str, group_by: Sequence[str] = (), prefix: str = "cover"
) -> CoverSummary:
    """Store per-sample percent cover and return per-group mean cover.

    Args:
        samples: a FiftyOne dataset or view.
        mask_field: a ``fo.Segmentation`` field written by coralseg.
        group_by: sample fields whose values define the groups (none: one group).
        prefix: the per-sample fields are ``<prefix>_<class>``.
    """
    import fiftyone as fo

    dataset = samples._dataset
    legend = ClassLegend.from_encoding(check_mask_field(dataset, mask_field))
    check_group_fields(dataset, group_by)
    check_masks_present(samples, mask_field)
    ids, masks = samples.values(["id", f"{mask_field}.mask_path"])
    covers, names = [], []
    for sample_id, mask_path in zip(ids, masks, strict=True):
        try:
            mask, _ = read_label_mask(mask_path)
        except CoralsegError as err:
            raise CoralsegError(
                f"the {mask_field} mask of sample {sample_id} cannot be read ({err}); run "
                "predict colonies on it again"
            ) from None
        covers.append(image_cover(mask, legend, where=mask_path))
        names.append(sample_id)
    table = CoverTable.from_covers(names, covers)
    fields = {name: cover_field(prefix, name) for name in legend.names}
    for column, name in enumerate(legend.names):
        field = fields[name]
        if not dataset.has_sample_field(field):
            dataset.add_sample_field(field, fo.FloatField)
        values = table.cover_percent[:, column]
        samples.set_values(field, [None if np.isnan(v) else float(v) for v in values])
    group_values = samples.values(list(group_by)) if group_by else []  # one list per field
    per_image = {
        sample_id: {
            f: "" if v[i] is None else str(v[i])
            for f, v in zip(group_by, group_values, strict=True)
        }
        for i, sample_id in enumerate(ids)
    }
    grouping = group_images(names, per_image, group_by)
    return CoverSummary(fields, group_cover(table, grouping).rows())
