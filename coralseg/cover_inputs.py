"""Where ``coralseg cover`` finds label masks, what their values mean, and their colonies.

Three kinds of folder are recognised:

* a ``coralseg prepare`` output (``manifest.json`` + ``classes.txt``): the masks in
  ``{train,val,test}/labels/``, their meaning from the manifest's encoding; each image gets
  the field ``split``;
* a ``coralseg infer`` output (``instances/`` + ``semantic/``): the refined semantic masks
  (``semantic/<image>.png``, or ``.tif`` for large images), their meaning from
  ``encoding.json`` or ``classes.txt`` (or ``--taxonomy``), and the predicted colonies from
  the instance records (``instances/<image>.json``, each colony's mask as the COCO RLE of
  its box);
* any folder of single-channel label masks (``.png``, ``.tif``, searched recursively),
  their meaning from ``--taxonomy`` (+ ``--background ignore``), ``--classes FILE``, or a
  ``classes.txt`` in the folder or the one above it.

Image names are mask paths relative to the folder, without extension, folders joined by
``__`` (as ``coralseg infer`` names its outputs), so masks of one image in two folders match.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from coral_core.ecology.legend import ClassLegend
from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import MANIFEST_FILE, read_dataset_manifest
from coral_core.formats.raster_io import GeoInfo
from coral_core.inference.instance_records import read_instance_record
from coral_core.inference.instances import CoralInstance
from coral_core.labels.taxonomy import (
    ENCODING_FILE,
    MaskEncoding,
    Taxonomy,
    TaxonomyError,
    get_taxonomy,
    read_class_files,
    read_encoding_file,
)

MASK_SUFFIXES = (".png", ".tif", ".tiff")
SPLITS = ("train", "val", "test")

Kind = Literal["masks", "prepare", "infer"]


@dataclass(frozen=True)
class MaskItem:
    """One image's label mask (and, for ``coralseg infer`` outputs, its instance record)."""

    name: str
    path: Path
    fields: dict[str, str] = field(default_factory=dict)
    record: Path | None = None


@dataclass(frozen=True)
class CoverSource:
    """A located input: its kind, the classes of its masks, and its images."""

    kind: Kind
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


def locate(
    folder: str | os.PathLike,
    taxonomy: str | None = None,
    classes_file: str | os.PathLike | None = None,
    background: Literal["class", "ignore"] = "class",
    exclude_background: bool = False,
) -> CoverSource:
    """Recognise a folder (see the module docstring) and list its masks.

    Args:
        taxonomy: a built-in name or a taxonomy file: the classes of a plain mask folder, or
            (with the same classes) the colony/cover marking for a prepare/infer folder.
        classes_file: a ``classes.txt`` (line ``i`` names value ``i``) for a plain folder.
        background: the mask convention, as ``coralseg prepare --background``: ``"class"``
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
        kind: Kind = "prepare"
        encoding = _prepare_encoding(root, taxonomy)
        items = _prepare_items(root)
    elif (root / "instances").is_dir() and (
        (root / "semantic").is_dir() or (root / "semantic_raw").is_dir()
    ):
        kind = "infer"
        encoding = _infer_encoding(root, taxonomy)
        items = _infer_items(root)
    else:
        kind = "masks"
        encoding = _mask_folder_encoding(root, taxonomy, classes_file, background)
        items = _mask_items(root)
    if not items:
        raise CoralsegError(
            f"no label masks ({', '.join(MASK_SUFFIXES)}) found in {root}; give a folder of "
            "label masks, a 'coralseg prepare' folder or a 'coralseg infer' output"
        )
    legend = ClassLegend.from_encoding(encoding, "ignore" if exclude_background else "class")
    return CoverSource(kind, root, encoding, legend, tuple(items))


# --- classes --------------------------------------------------------------------------------


def _prepare_encoding(root: Path, taxonomy: str | None) -> MaskEncoding:
    manifest = read_dataset_manifest(root)
    return _with_taxonomy(manifest.encoding, taxonomy, root / MANIFEST_FILE)


def _infer_encoding(root: Path, taxonomy: str | None) -> MaskEncoding:
    encoding_path = root / ENCODING_FILE
    if encoding_path.is_file():
        return _with_taxonomy(read_encoding_file(encoding_path), taxonomy, encoding_path)
    path = root / "classes.txt"
    if not path.is_file():
        raise CoralsegError(
            f"{root} has neither {ENCODING_FILE} nor classes.txt to say what its masks mean; "
            "it is not a complete 'coralseg infer' output"
        )
    return _with_taxonomy(read_class_files(path), taxonomy, path)


def _with_taxonomy(encoding: MaskEncoding, taxonomy: str | None, where: Path) -> MaskEncoding:
    """``encoding`` with ``taxonomy``'s colony marking and colours, when their classes agree."""
    if taxonomy is None:
        return encoding
    chosen = _get_taxonomy(taxonomy)
    if tuple(chosen.classes) != tuple(encoding.taxonomy.classes):
        raise CoralsegError(
            f"--taxonomy {taxonomy} has classes {', '.join(chosen.classes)}, but {where} "
            f"defines {', '.join(encoding.taxonomy.classes)}; drop --taxonomy or give the "
            "taxonomy the masks were made with"
        )
    return MaskEncoding(chosen, encoding.background_is_ignore)


def _get_taxonomy(spec: str) -> Taxonomy:
    try:
        return get_taxonomy(spec)
    except TaxonomyError as err:
        raise CoralsegError(str(err)) from None


def _mask_folder_encoding(
    root: Path, taxonomy: str | None, classes_file: str | os.PathLike | None, background: str
) -> MaskEncoding:
    if taxonomy is not None and classes_file is not None:
        raise CoralsegError("give either --taxonomy or --classes, not both")
    if taxonomy is not None:
        return MaskEncoding(_get_taxonomy(taxonomy), background_is_ignore=background == "ignore")
    if classes_file is None:
        found = [p / "classes.txt" for p in (root, root.parent) if (p / "classes.txt").is_file()]
        if not found:
            raise CoralsegError(
                f"say what the values of the masks in {root} mean: --taxonomy NAME (with "
                "--background ignore if 0..N-1 are the classes and 255 background) or "
                "--classes classes.txt"
            )
        classes_file = found[0]
    elif not Path(classes_file).is_file():
        raise CoralsegError(f"the classes file {classes_file} does not exist")
    return read_class_files(classes_file)


# --- items ----------------------------------------------------------------------------------


def image_name(path: Path, root: Path) -> str:
    """The image name of a mask: its path below ``root`` without extension, ``__``-joined."""
    return str(path.relative_to(root).with_suffix("")).replace(os.sep, "__")


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


# --- reading --------------------------------------------------------------------------------


def read_mask(path: Path) -> tuple[np.ndarray, GeoInfo | None]:
    """A label mask as ``(H, W)`` uint8/uint16 class values, and its georeference if any.

    PNG palette images give their indices (not colours); TIFFs are read with GDAL.

    Raises:
        CoralsegError: unreadable, not single-channel, or not 8/16-bit unsigned.
    """
    if path.suffix.lower() in (".tif", ".tiff"):
        return _read_tiff(path)
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I;16", "I;16B", "I", "1"):
                raise CoralsegError(
                    f"{path} is a {image.mode} image; label masks have one channel of class "
                    "values (a colour mask must be converted to class values first)"
                )
            mask = np.array(image)
    except CoralsegError:
        raise
    except (OSError, ValueError) as err:
        raise CoralsegError(f"cannot read the mask {path}: {err}") from None
    return _as_label_array(mask, path), None


def _read_tiff(path: Path) -> tuple[np.ndarray, GeoInfo | None]:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as dataset:
            if dataset.count != 1:
                raise CoralsegError(
                    f"{path} has {dataset.count} bands; label masks have one band of class values"
                )
            return _as_label_array(dataset.read(1), path), _geo_of(dataset)
    except (RasterioError, OSError) as err:
        raise CoralsegError(f"cannot read the mask {path}: {err}") from None


def _geo_of(dataset) -> GeoInfo | None:
    """A rasterio dataset's georeference; None for a plain (identity) pixel grid."""
    if dataset.transform.is_identity:
        return None
    crs = None
    if dataset.crs is not None:
        epsg = dataset.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else dataset.crs.to_wkt()
    return GeoInfo(tuple(dataset.transform.to_gdal()), crs)


def _as_label_array(mask: np.ndarray, path: Path) -> np.ndarray:
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.ndim != 2:
        raise CoralsegError(f"{path} is not a single-channel label mask (shape {mask.shape})")
    if mask.dtype in (np.uint8, np.uint16):
        return mask
    if np.issubdtype(mask.dtype, np.integer) and mask.min() >= 0 and mask.max() <= 65535:
        return mask.astype(np.uint16)
    raise CoralsegError(f"{path} holds {mask.dtype} values; label masks are 8- or 16-bit classes")


def record_geo(item: MaskItem) -> GeoInfo | None:
    """The georeference of the image an infer record names, when it is a GeoTIFF."""
    if item.record is None:
        return None
    source = Path(read_instance_record(item.record).file_name)
    if source.suffix.lower() not in (".tif", ".tiff") or not source.is_file():
        return None
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(source) as dataset:
            return _geo_of(dataset)
    except (RasterioError, OSError):
        return None


def read_instances(item: MaskItem) -> tuple[CoralInstance, ...]:
    """The colonies an infer record lists, each inside its box (none for other items).

    Raises:
        CoralsegError: the record is unreadable or malformed.
    """
    if item.record is None:
        return ()
    return read_instance_record(item.record).instances
