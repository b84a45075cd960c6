"""Groups of images (site, year, site-year, ...) and per-group cover and colony statistics.

Each image may carry text fields (``{"site": "RAI1", "year": "2019"}``) from

* a filename pattern (:func:`fields_from_name`): ``<site>_<year>_<quadrat>`` matches
  ``RAI1_2019_Q07`` with site ``RAI1``, year ``2019``, quadrat ``Q07``. ``*`` matches any
  text and keeps nothing. From the left, each ``<field>`` and ``*`` takes the shortest text
  that lets the rest match (so the last field takes what is left: ``*_<quadrat>`` on
  ``A_B_10`` gives ``B_10``; write ``*_*_<quadrat>`` for ``10``); the pattern must match
  the whole name (without extension). A pattern holding ``(?P<`` is a
  Python regular expression with named groups instead;
* a CSV of image metadata (:func:`read_metadata_csv`), one row per image;
* any mapping, e.g. FiftyOne sample fields.

A :class:`Grouping` puts images with equal values of the chosen fields together. Group
statistics are over images (each quadrat is one sample, as in reef surveys):

* ``mean_cover_percent``: the mean of the images' percent covers; ``sd``: their standard
  deviation (``n - 1`` in the denominator); ``se = sd / sqrt(n)``; ``n``: images with
  annotated pixels (images with none have no cover and are left out); ``sd`` and ``se`` are
  empty for ``n = 1``;
* ``pooled_cover_percent``: all the group's class pixels over all its annotated pixels.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from coral_core.ecology.colonies import Colony
from coral_core.ecology.cover import CoverTable
from coral_core.ecology.tables import csv_number
from coral_core.errors import CoralsegError

_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
IMAGE_COLUMNS = ("image", "filename", "file_name", "file", "filepath", "path", "name")
ALL_IMAGES = "all images"
MISSING = ""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A regular expression for a filename pattern (see the module docstring).

    Raises:
        ValueError: the pattern has no field, repeats one, or is not a valid expression.
    """
    if "(?P<" in pattern:
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"the group pattern {pattern!r} is not a valid regular expression: {err}"
            ) from None
        if not regex.groupindex:
            raise ValueError(f"the group pattern {pattern!r} names no group")
        return regex
    parts: list[str] = []
    names: list[str] = []
    position = 0
    for match in _FIELD.finditer(pattern):
        parts.append(_literal(pattern[position : match.start()]))
        name = match.group(1)
        if name in names:
            raise ValueError(f"the group pattern {pattern!r} names <{name}> twice")
        names.append(name)
        parts.append(f"(?P<{name}>.+?)")
        position = match.end()
    parts.append(_literal(pattern[position:]))
    if not names:
        raise ValueError(
            f"the group pattern {pattern!r} has no <field>; write e.g. '<site>_<year>_<quadrat>'"
        )
    return re.compile("".join(parts))


def _literal(text: str) -> str:
    return ".*?".join(re.escape(piece) for piece in text.split("*"))


def pattern_fields(pattern: str) -> tuple[str, ...]:
    """The field names of a pattern, in order."""
    return tuple(compile_pattern(pattern).groupindex)


def fields_from_name(name: str, pattern: str | re.Pattern[str]) -> dict[str, str] | None:
    """The fields a filename pattern reads from an image name (its extension dropped and
    folders ignored), or None when it does not match."""
    regex = compile_pattern(pattern) if isinstance(pattern, str) else pattern
    stem = PurePath(name).name
    for candidate in (PurePath(stem).stem, stem):
        match = regex.fullmatch(candidate)
        if match:
            return {k: v for k, v in match.groupdict().items() if v is not None}
    return None


def fields_from_pattern(
    names: Sequence[str], pattern: str
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Fields of each image name from a pattern: ``(fields by name, names not matching)``."""
    regex = compile_pattern(pattern)
    fields: dict[str, dict[str, str]] = {}
    unmatched = []
    for name in names:
        found = fields_from_name(name, regex)
        if found is None:
            unmatched.append(name)
        else:
            fields[name] = found
    return fields, unmatched


def read_metadata_csv(
    path: str | Path, image_column: str | None = None
) -> tuple[dict[str, dict[str, str]], tuple[str, ...]]:
    """Read a CSV of image metadata: one row per image, a column naming the image.

    Args:
        image_column: the column with image names (file names, paths or stems); by default
            the first of ``image, filename, file_name, file, filepath, path, name`` present
            (case ignored).

    Returns:
        ``(rows by image name as written, the other columns in order)``; values are stripped
        text.

    Raises:
        CoralsegError: the file is missing or unreadable, has no image column, or names an
            image twice.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = tuple(c.strip() for c in (reader.fieldnames or ()))
            records = [
                {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in reader
            ]
    except FileNotFoundError:
        raise CoralsegError(f"the metadata CSV {path} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CoralsegError(f"cannot read the metadata CSV {path}: {err}") from None
    if image_column is None:
        lowered = {c.lower(): c for c in columns}
        image_column = next((lowered[c] for c in IMAGE_COLUMNS if c in lowered), None)
        if image_column is None:
            raise CoralsegError(
                f"the metadata CSV {path} needs a column naming the images "
                f"({', '.join(IMAGE_COLUMNS)}); its columns are {', '.join(columns) or 'none'}"
            )
    elif image_column not in columns:
        raise CoralsegError(
            f"the metadata CSV {path} has no column {image_column!r}; its columns are "
            f"{', '.join(columns)}"
        )
    rows: dict[str, dict[str, str]] = {}
    for record in records:
        name = record.get(image_column, "")
        if not name:
            continue
        if name in rows:
            raise CoralsegError(f"the metadata CSV {path} lists image {name!r} twice")
        rows[name] = {k: v for k, v in record.items() if k != image_column}
    return rows, tuple(c for c in columns if c != image_column)


def match_metadata(
    names: Sequence[str], metadata: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Fields of each image from metadata keyed by image name, matched by exact name, then
    file name, then stem (``reef/A_01.jpg`` in the CSV matches the mask ``A_01.png``).

    Returns:
        ``(fields by image name, names without metadata)``.

    Raises:
        CoralsegError: a stem matches two metadata rows.
    """
    by_stem: dict[str, str] = {}
    for key in metadata:
        stem = PurePath(key.replace("\\", "/")).stem
        if stem in by_stem and by_stem[stem] != key:
            raise CoralsegError(
                f"metadata rows {by_stem[stem]!r} and {key!r} name the same image stem {stem!r}"
            )
        by_stem[stem] = key
    fields: dict[str, dict[str, str]] = {}
    missing = []
    for name in names:
        key = name if name in metadata else by_stem.get(PurePath(name.replace("\\", "/")).stem)
        if key is None:
            missing.append(name)
        else:
            fields[name] = dict(metadata[key])
    return fields, missing


@dataclass(frozen=True)
class Grouping:
    """Images grouped by the values of some fields.

    Attributes:
        by: the field names; empty for one group of all images.
        keys: ``(G,)`` group keys: tuples of field values (``""`` where an image lacks a
            field), sorted.
        index: ``(I,)`` int64 group of each image, positions in ``keys``.
    """

    by: tuple[str, ...]
    keys: tuple[tuple[str, ...], ...]
    index: np.ndarray

    def label(self, group: int) -> str:
        """A short name of a group: its values joined by ``" / "``, or "all images"."""
        if not self.by:
            return ALL_IMAGES
        return " / ".join(v or "?" for v in self.keys[group])

    def key_columns(self, group: int) -> dict[str, str]:
        """``{"group": label, field: value, ...}``: the group columns of a table row."""
        return {"group": self.label(group)} | dict(zip(self.by, self.keys[group], strict=True))


def group_images(
    images: Sequence[str],
    fields: Mapping[str, Mapping[str, str]] | None = None,
    by: Sequence[str] = (),
) -> Grouping:
    """Group images by the values of the fields ``by`` (all in one group when ``by`` is empty).

    Raises:
        ValueError: a field of ``by`` appears in no image's fields.
    """
    fields = fields or {}
    by = tuple(by)
    for name in by:
        if not any(name in f for f in fields.values()):
            raise ValueError(f"no image has the field {name!r} to group by")
    image_keys = [tuple(fields.get(image, {}).get(f, MISSING) for f in by) for image in images]
    keys = tuple(sorted(set(image_keys)))
    position = {key: i for i, key in enumerate(keys)}
    index = np.array([position[k] for k in image_keys], dtype=np.int64)
    return Grouping(by, keys, index)


@dataclass(frozen=True, eq=False)
class GroupCover:
    """Per-group cover statistics (definitions in the module docstring).

    Attributes:
        grouping: the groups; ``classes``: class names.
        n: ``(G,)`` images with annotated pixels per group.
        mean, sd, se, pooled: ``(G, C)`` float64 percent cover (NaN where undefined).
        mean_annotated_fraction: ``(G,)`` float64 over all the group's images.
    """

    grouping: Grouping
    classes: tuple[str, ...]
    n: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    se: np.ndarray
    pooled: np.ndarray
    mean_annotated_fraction: np.ndarray

    def rows(self) -> list[dict[str, object]]:
        """Tidy rows, one per group and class: ``group``, the group fields, ``class``,
        ``n_images``, ``mean_cover_percent``, ``sd_cover_percent``, ``se_cover_percent``,
        ``pooled_cover_percent``, ``mean_annotated_fraction``."""
        out = []
        for g in range(len(self.grouping.keys)):
            for c, name in enumerate(self.classes):
                out.append(
                    self.grouping.key_columns(g)
                    | {
                        "class": name,
                        "n_images": int(self.n[g]),
                        "mean_cover_percent": csv_number(self.mean[g, c]),
                        "sd_cover_percent": csv_number(self.sd[g, c]),
                        "se_cover_percent": csv_number(self.se[g, c]),
                        "pooled_cover_percent": csv_number(self.pooled[g, c]),
                        "mean_annotated_fraction": csv_number(self.mean_annotated_fraction[g]),
                    }
                )
        return out


def group_cover(table: CoverTable, grouping: Grouping) -> GroupCover:
    """Mean, SD, SE and pooled cover per group and class of a cover table."""
    if len(grouping.index) != len(table.images):
        raise ValueError(
            f"the grouping has {len(grouping.index)} images, the table {len(table.images)}"
        )
    cover = table.cover_percent
    annotated = table.annotated_pixels
    fraction = table.annotated_fraction
    groups, classes = len(grouping.keys), len(table.classes)
    shape = (groups, classes)
    n = np.zeros(groups, dtype=np.int64)
    mean, sd, se, pooled = (np.full(shape, np.nan) for _ in range(4))
    mean_fraction = np.full(groups, np.nan)
    for g in range(groups):
        members = grouping.index == g
        mean_fraction[g] = fraction[members].mean()
        rows = members & (annotated > 0)
        n[g] = int(rows.sum())
        if not n[g]:
            continue
        values = cover[rows]
        mean[g] = values.mean(axis=0)
        if n[g] > 1:
            sd[g] = values.std(axis=0, ddof=1)
            se[g] = sd[g] / np.sqrt(n[g])
        pooled[g] = 100.0 * table.pixels[rows].sum(axis=0) / annotated[rows].sum()
    return GroupCover(grouping, table.classes, n, mean, sd, se, pooled, mean_fraction)


def colony_summary_rows(
    images: Sequence[str],
    colonies: Mapping[str, Sequence[Colony]],
    grouping: Grouping,
    classes: Sequence[str],
    roi_pixels: Mapping[str, int] | None = None,
    pixels_per_cm: Mapping[str, float] | None = None,
) -> list[dict[str, object]]:
    """Colony counts and size distributions per group and colony class.

    Args:
        images: every image analysed (images without colonies count as zero), in the
            grouping's order.
        colonies: colonies per image name.
        classes: the colony classes to report (each gets a row, zero colonies included).
        roi_pixels: sampled pixels per image (for densities).
        pixels_per_cm: scale per image; sizes in cm^2 and densities per m^2 are reported
            for groups whose images all have one.

    Returns:
        Rows: ``group``, group fields, ``class``, ``n_images``, ``colonies``,
        ``colonies_per_image``, ``area_px_mean``, ``area_px_median``, ``area_px_q25``,
        ``area_px_q75``, ``area_px_max``, ``edge_colonies`` (touching the border), and with a
        scale ``area_cm2_mean``, ``area_cm2_median``, ``area_cm2_q25``, ``area_cm2_q75``,
        ``area_cm2_max``, ``colonies_per_m2`` (``""`` where a group lacks scales).
    """
    scaled = pixels_per_cm is not None
    out = []
    for g in range(len(grouping.keys)):
        members = [images[i] for i in np.flatnonzero(grouping.index == g)]
        has_scale = scaled and all(m in pixels_per_cm for m in members)  # type: ignore[operator]
        for name in classes:
            found = [(m, c) for m in members for c in colonies.get(m, ()) if c.label == name]
            areas = np.array([c.area for _, c in found], dtype=np.float64)
            row = grouping.key_columns(g) | {
                "class": name,
                "n_images": len(members),
                "colonies": len(found),
                "colonies_per_image": len(found) / len(members) if members else "",
            }
            row |= _distribution("area_px", areas)
            row["edge_colonies"] = sum(c.touches_edge for _, c in found)
            if scaled:
                if has_scale:
                    cm2 = np.array(
                        [c.area / pixels_per_cm[m] ** 2 for m, c in found],  # type: ignore[index]
                        dtype=np.float64,
                    )
                    row |= _distribution("area_cm2", cm2)
                    sampled_m2 = sum(
                        (roi_pixels or {}).get(m, 0) / pixels_per_cm[m] ** 2 / 1e4  # type: ignore[index]
                        for m in members
                    )
                    row["colonies_per_m2"] = len(found) / sampled_m2 if sampled_m2 else ""
                else:
                    row |= {k: "" for k in _distribution("area_cm2", np.zeros(0))}
                    row["colonies_per_m2"] = ""
            out.append(row)
    return out


def _distribution(prefix: str, values: np.ndarray) -> dict[str, object]:
    if not values.size:
        return {f"{prefix}_{s}": "" for s in ("mean", "median", "q25", "q75", "max")}
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {
        f"{prefix}_mean": float(values.mean()),
        f"{prefix}_median": float(median),
        f"{prefix}_q25": float(q25),
        f"{prefix}_q75": float(q75),
        f"{prefix}_max": float(values.max()),
    }
