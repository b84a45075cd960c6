"""Where label masks are found, what their values mean, and their colonies.

Three kinds of folder are recognised by :func:`locate_masks`:

* a ``coralseg prepare`` output (``manifest.json`` + ``classes.txt``): the masks in
  ``{train,val,test}/labels/``, their meaning from the manifest's encoding; each image gets
  the field ``split``;
* a ``coralseg infer`` output (``instances/`` + ``semantic/``): the refined semantic masks
  (``semantic/<image>.png``, or ``.tif`` for large images), their meaning from
  ``encoding.json`` or ``classes.txt`` (or a taxonomy), and the predicted colonies from
  the instance records (``instances/<image>.json``);
* any folder of single-channel label masks (``.png``, ``.tif``, searched recursively),
  their meaning from a taxonomy (+ ``background="ignore"``), a ``classes.txt`` file, or a
  ``classes.txt`` in the folder or the one above it.

Each file is read by the module that owns its format: the manifest by
:mod:`coral_core.formats.dataset_manifest`, the class files and ``encoding.json`` by
:mod:`coral_core.labels.taxonomy`, the instance records by
:mod:`coral_core.inference.instance_records`, the masks by
:mod:`coral_core.formats.label_rasters`.

Image names are mask paths relative to the folder, without extension, folders joined by
``__`` (as ``coralseg infer`` names its outputs), so masks of one image in two folders match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from coral_core.ecology.legend import ClassLegend
from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import MANIFEST_FILE, read_dataset_manifest
from coral_core.formats.label_rasters import MASK_SUFFIXES
from coral_core.formats.raster_io import GeoInfo, photo_geo
from coral_core.inference.instance_records import read_instance_record
from coral_core.inference.instances import CoralInstance
from coral_core.labels.taxonomy import (
    ENCODING_FILE,
    MaskEncoding,
    get_taxonomy,
    read_class_files,
    read_encoding_file,
)

SPLITS = ("train", "val", "test")
CLASSES_FILE = "classes.txt"

SourceKind = Literal["masks", "prepare", "infer"]


@dataclass(frozen=True)
class MaskItem:
    """One image's label mask (and, for ``coralseg infer`` outputs, its instance record)."""

    name: str
    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    record: Path | None = None


@dataclass(frozen=True)
class MaskSource:
    """A located folder: its kind, the classes of its masks, and its images."""

    kind: SourceKind
    root: Path
    encoding: MaskEncoding
    legend: ClassLegend
    items: tuple[MaskItem, ...]

    def describe(self) -> str:
        what = {
            "masks": "label masks",
            "prepare": "a 'coralseg prepare' folder",
            "infer": "a 'coralseg infer' output",
        }[self.kind]
        return (
            f"{self.root}: {what}, {len(self.items)} image(s), taxonomy "
            f"{self.encoding.taxonomy.name!r} ({len(self.legend.names)} classes)"
        )


def locate_masks(
    folder: str | os.PathLike,
    taxonomy: str | None = None,
    classes_file: str | os.PathLike | None = None,
    background: Literal["class", "ignore"] = "class",
    exclude_background: bool = False,
) -> MaskSource:
    """Recognise a folder (see the module docstring) and list its masks.

    Args:
        taxonomy: a built-in name or a taxonomy file: the classes of a plain mask folder, or
            (with the same classes) the colony/cover marking for a prepare/infer folder.
        classes_file: a ``classes.txt`` (line ``i`` names value ``i``) for a plain folder.
        background: the mask convention, as ``coralseg prepare`` writes it: ``"class"``
            (0 = background, 1..N = classes) or ``"ignore"`` (0..N-1 = classes,
            255 = background and ignore). Only for plain folders with ``taxonomy``.
        exclude_background: leave background pixels out of the annotated area (cover over
            the labelled classes only) instead of reporting them as a ``background`` class.

    Raises:
        CoralsegError: the folder is missing or empty, or the classes cannot be determined.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CoralsegError(f"{root} is not a folder; give a folder of label masks")
    if (root / MANIFEST_FILE).is_file():
        kind: SourceKind = "prepare"
        manifest = read_dataset_manifest(root)
        encoding = _with_taxonomy(manifest.encoding, taxonomy, root / MANIFEST_FILE)
        items = _prepare_items(root)
    elif (root / "instances").is_dir() and (
        (root / "semantic").is_dir() or (root / "semantic_raw").is_dir()
    ):
        kind = "infer"
        encoding = _infer_encoding(root, taxonomy)
        items = _infer_items(root)
    else:
        kind = "masks"
        items = _mask_items(root)
        if items:  # a folder without masks is told so, not asked what its classes are
            encoding = _mask_folder_encoding(root, taxonomy, classes_file, background)
    if not items:
        raise CoralsegError(
            f"no label masks ({', '.join(MASK_SUFFIXES)}) found in {root}; give a folder of "
            "label masks, a 'coralseg prepare' folder or a 'coralseg infer' output"
        )
    legend = ClassLegend.from_encoding(encoding, "ignore" if exclude_background else "class")
    return MaskSource(kind, root, encoding, legend, tuple(items))


def item_instances(item: MaskItem) -> tuple[CoralInstance, ...]:
    """The colonies an infer record lists, each inside its box (none for other items).

    Raises:
        CoralsegError: the record is unreadable or malformed.
    """
    if item.record is None:
        return ()
    return read_instance_record(item.record).instances


def item_photo(item: MaskItem) -> Path | None:
    """The photo an infer record names, when it exists (None for other items)."""
    if item.record is None:
        return None
    recorded = read_instance_record(item.record).file_name
    photo = Path(recorded)
    return photo if recorded and photo.is_file() else None


def item_geo(item: MaskItem) -> GeoInfo | None:
    """The georeference of the photo an infer record names, when it is a GeoTIFF."""
    if item.record is None:
        return None
    return photo_geo(read_instance_record(item.record).file_name)


def image_name(path: Path, root: Path) -> str:
    """The image name of a mask: its path below ``root`` without extension, ``__``-joined."""
    return str(path.relative_to(root).with_suffix("")).replace(os.sep, "__")


# --- classes --------------------------------------------------------------------------------


def _infer_encoding(root: Path, taxonomy: str | None) -> MaskEncoding:
    encoding_path = root / ENCODING_FILE
    if encoding_path.is_file():
        return _with_taxonomy(read_encoding_file(encoding_path), taxonomy, encoding_path)
    path = root / CLASSES_FILE
    if not path.is_file():
        raise CoralsegError(
            f"{root} has neither {ENCODING_FILE} nor {CLASSES_FILE} to say what its masks "
            "mean; it is not a complete 'coralseg infer' output"
        )
    return _with_taxonomy(read_class_files(path), taxonomy, path)


def _with_taxonomy(encoding: MaskEncoding, taxonomy: str | None, where: Path) -> MaskEncoding:
    """``encoding`` with ``taxonomy``'s colony marking and colours, when their classes agree."""
    if taxonomy is None:
        return encoding
    chosen = get_taxonomy(taxonomy)
    if tuple(chosen.classes) != tuple(encoding.taxonomy.classes):
        raise CoralsegError(
            f"the taxonomy {taxonomy} has classes {', '.join(chosen.classes)}, but {where} "
            f"defines {', '.join(encoding.taxonomy.classes)}; leave the taxonomy out or give "
            "the one the masks were made with",
            settings=("taxonomy",),
        )
    return MaskEncoding(chosen, encoding.background_is_ignore)


def _mask_folder_encoding(
    root: Path, taxonomy: str | None, classes_file: str | os.PathLike | None, background: str
) -> MaskEncoding:
    if taxonomy is not None and classes_file is not None:
        raise CoralsegError(
            "give either a taxonomy or a classes file, not both",
            settings=("taxonomy", "classes_file"),
        )
    if taxonomy is not None:
        return MaskEncoding(get_taxonomy(taxonomy), background_is_ignore=background == "ignore")
    if classes_file is None:
        found = [p / CLASSES_FILE for p in (root, root.parent) if (p / CLASSES_FILE).is_file()]
        if not found:
            raise CoralsegError(
                f"say what the values of the masks in {root} mean: a taxonomy (with background "
                f"'ignore' if 0..N-1 are the classes and 255 background) or a {CLASSES_FILE}",
                settings=("taxonomy", "background", "classes_file"),
            )
        classes_file = found[0]
    elif not Path(classes_file).is_file():
        raise CoralsegError(
            f"the classes file {classes_file} does not exist", settings=("classes_file",)
        )
    return read_class_files(classes_file)


# --- items ----------------------------------------------------------------------------------


def _mask_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in MASK_SUFFIXES and not p.name.startswith(".")
    )


def _mask_items(root: Path) -> list[MaskItem]:
    return [MaskItem(image_name(p, root), p) for p in _mask_files(root)]


def _prepare_items(root: Path) -> list[MaskItem]:
    items = []
    for split in SPLITS:
        labels = root / split / "labels"
        if labels.is_dir():
            items += [
                MaskItem(image_name(p, labels), p, {"split": split}) for p in _mask_files(labels)
            ]
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        items = [MaskItem(f"{i.fields['split']}__{i.name}", i.path, i.fields) for i in items]
    return items


def _infer_items(root: Path) -> list[MaskItem]:
    items = []
    for record in sorted((root / "instances").glob("*.json")):
        stem = record.stem
        # refined map first (PNG, or tiled GeoTIFF for large images), else the raw one
        candidates = [root / "semantic" / f"{stem}.png", root / "semantic" / f"{stem}.tif"]
        candidates += [root / "semantic_raw" / f"{stem}.png", root / "semantic_raw" / f"{stem}.tif"]
        semantic = next((c for c in candidates if c.is_file()), None)
        if semantic is not None:
            items.append(MaskItem(stem, semantic, {}, record))
    return items
