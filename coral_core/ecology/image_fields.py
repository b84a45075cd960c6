"""The fields of each image (site, year, split, ...) and the fields that form groups.

Fields come from the mask sources (``split`` of a ``coralseg prepare`` folder) and from a
groups specification: a filename pattern such as ``'<site>_<year>_*'``
(:func:`~coral_core.ecology.groups.fields_from_pattern`) or a metadata CSV
(:func:`~coral_core.ecology.groups.read_metadata_csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from coral_core.ecology.groups import (
    fields_from_pattern,
    match_metadata,
    pattern_fields,
    read_metadata_csv,
)
from coral_core.ecology.sources import MaskSource
from coral_core.errors import CoralsegError


@dataclass(frozen=True)
class ImageFields:
    """Fields of every image, all field names (columns), the group-by fields, and notes
    (sentences about images left without fields) for the user."""

    fields: dict[str, dict[str, str]]
    field_names: list[str]
    group_by: list[str]
    notes: list[str] = field(default_factory=list)


def image_fields(
    sources: Sequence[MaskSource],
    names: Sequence[str],
    groups: str | None = None,
    image_column: str | None = None,
    group_by: Sequence[str] | None = None,
) -> ImageFields:
    """The fields of the images ``names`` of ``sources``.

    Args:
        groups: a filename pattern or the path of a metadata CSV (``.csv``); None: the
            sources' fields only.
        image_column: the CSV's image column (found by name when None).
        group_by: the fields that form groups; None: every field ``groups`` defines.

    Raises:
        CoralsegError: no image matches ``groups``, or ``group_by`` names an unknown field.
    """
    fields: dict[str, dict[str, str]] = {}
    for source in sources:
        for item in source.items:
            if item.fields:
                fields.setdefault(item.name, {}).update(item.fields)
    source_fields = sorted({f for values in fields.values() for f in values})
    notes: list[str] = []
    group_fields: list[str] = []
    if groups:
        if groups.lower().endswith(".csv") or Path(groups).is_file():
            metadata, group_fields_tuple = read_metadata_csv(groups, image_column)
            group_fields = list(group_fields_tuple)
            found, missing = match_metadata(names, metadata)
            what = f"the CSV {groups}"
        else:
            if image_column:
                raise CoralsegError(
                    "an image column is for a groups CSV, not a pattern",
                    settings=("image_column",),
                )
            try:
                group_fields = list(pattern_fields(groups))
                found, missing = fields_from_pattern(names, groups)
            except ValueError as err:
                raise CoralsegError(str(err)) from None
            what = f"the pattern {groups!r}"
        if not found:
            raise CoralsegError(
                f"no image name matches {what} (e.g. {names[0]!r}); check the pattern or the "
                "CSV's image column"
            )
        if missing:
            notes.append(
                f"{len(missing)} image(s) have no fields from {what} and form the group '?', "
                f"e.g. {missing[0]}"
            )
        for name, values in found.items():
            fields.setdefault(name, {}).update(values)
    field_names = [*source_fields, *(f for f in group_fields if f not in source_fields)]
    if group_by is None:
        return ImageFields(fields, field_names, group_fields, notes)
    unknown = [f for f in group_by if f not in field_names]
    if unknown:
        if not field_names:
            raise CoralsegError(
                f"no field {', '.join(unknown)} to group by: the images have no fields; give "
                "a filename pattern or a metadata CSV that defines them",
                settings=("groups",),
            )
        raise CoralsegError(
            f"no field {', '.join(unknown)} to group by; the images have {', '.join(field_names)}",
            settings=("group_by",),
        )
    return ImageFields(fields, field_names, list(group_by), notes)
