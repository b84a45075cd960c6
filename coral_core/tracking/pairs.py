"""Which images of two visits show one plot, and their photos.

Both visits are mask sources (:mod:`coral_core.ecology.sources`: label-mask folders,
``coralseg prepare`` folders, ``coralseg infer`` outputs). Images are paired

* by name (the default): an image name present in both visits is one plot;
* by a filename pattern with a ``<plot>`` field, e.g. ``'<plot>_<year>'``: images of both
  visits with the same plot value are one plot (other fields are ignored);
* by a CSV with columns ``before`` and ``after`` (image names, file names or paths) and
  optionally ``plot``.

A plot's photos are found from the infer record (``file_name``), beside a prepare folder's
labels (``<split>/data/<name>.*``), or in a photo folder by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from coral_core.ecology.groups import fields_from_pattern, match_metadata, read_metadata_csv
from coral_core.ecology.sources import MaskItem, MaskSource, item_photo
from coral_core.errors import CoralsegError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class PlotPair:
    """One plot seen on both visits."""

    plot: str
    before: MaskItem
    after: MaskItem


def pair_visits(before: MaskSource, after: MaskSource, pairs: str | None) -> list[PlotPair]:
    """The plots of two visits (see the module docstring): ``pairs`` is None (by name), a
    filename pattern with a ``<plot>`` field, or the path of a pairs CSV.

    Raises:
        CoralsegError: no pair is found, or a plot has two images on one visit.
    """
    if pairs is None:
        by_name = {item.name: item for item in after.items}
        found = [PlotPair(i.name, i, by_name[i.name]) for i in before.items if i.name in by_name]
        how = "by name (no image name appears in both)"
    elif pairs.lower().endswith(".csv") or Path(pairs).is_file():
        found = _pairs_from_csv(before, after, Path(pairs))
        how = f"with the CSV {pairs}"
    else:
        found = _pairs_from_pattern(before, after, pairs)
        how = f"with the pattern {pairs!r}"
    if not found:
        raise CoralsegError(
            f"no image of {before.root} could be paired with one of {after.root} {how}; pair "
            "them by a filename pattern with a <plot> field, e.g. '<plot>_<year>', or by a CSV "
            "with columns before, after",
            settings=("pairs",),
        )
    return found


def _pairs_from_pattern(before: MaskSource, after: MaskSource, pattern: str) -> list[PlotPair]:
    if "<plot>" not in pattern:
        raise CoralsegError(
            f"the pairing pattern {pattern!r} needs a <plot> field naming the part of the file "
            "name that is the same on both visits, e.g. '<plot>_<year>'",
            settings=("pairs",),
        )
    plots = []
    for source in (before, after):
        try:
            fields, _ = fields_from_pattern([i.name for i in source.items], pattern)
        except ValueError as err:
            raise CoralsegError(str(err)) from None
        by_plot: dict[str, MaskItem] = {}
        for item in source.items:
            if item.name not in fields:
                continue
            plot = fields[item.name]["plot"]
            if plot in by_plot:
                raise CoralsegError(
                    f"{source.root} has two images of plot {plot!r} ({by_plot[plot].name} and "
                    f"{item.name}); make the pairing pattern tell them apart or pair them "
                    "with a CSV",
                    settings=("pairs",),
                )
            by_plot[plot] = item
        plots.append(by_plot)
    return [PlotPair(p, plots[0][p], plots[1][p]) for p in sorted(plots[0]) if p in plots[1]]


def _pairs_from_csv(before: MaskSource, after: MaskSource, path: Path) -> list[PlotPair]:
    rows, columns = read_metadata_csv(path, "before")
    if "after" not in columns:
        raise CoralsegError(
            f"the pairs CSV {path} needs columns before and after; its other columns are "
            f"{', '.join(columns) or 'none'}"
        )
    matched, _ = match_metadata([i.name for i in before.items], rows)
    after_by_stem = {PurePath(i.name).stem: i for i in after.items}
    after_by_name = {i.name: i for i in after.items}
    found = []
    for item in before.items:
        if item.name not in matched:
            continue
        wanted = matched[item.name]["after"]
        partner = after_by_name.get(wanted) or after_by_stem.get(
            PurePath(wanted.replace("\\", "/")).stem
        )
        if partner is None:
            raise CoralsegError(
                f"the pairs CSV {path} pairs {item.name} with {wanted!r}, which {after.root} "
                "does not have"
            )
        found.append(PlotPair(matched[item.name].get("plot") or item.name, item, partner))
    return found


def find_photo(source: MaskSource, item: MaskItem, folder: str | Path | None) -> Path | None:
    """The photo of an image: from ``folder`` by name, the infer record, or a prepare
    folder's ``data/``; None when there is none."""
    stem = PurePath(item.name.replace("__", "/")).name
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise CoralsegError(f"the photo folder {root} does not exist")
        for name in (item.name.replace("__", "/"), stem):
            for suffix in PHOTO_SUFFIXES:
                if (root / f"{name}{suffix}").is_file():
                    return root / f"{name}{suffix}"
        return None
    if item.record is not None:
        return item_photo(item)
    if source.kind == "prepare":
        data = item.path.parent.parent / "data"
        for suffix in PHOTO_SUFFIXES:
            if (data / f"{item.path.stem}{suffix}").is_file():
                return data / f"{item.path.stem}{suffix}"
    return None
