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

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from coral_core.ecology.legend import ClassLegend
from coral_core.errors import CoralsegError
from coral_core.raster_io import GeoInfo
from coral_core.rle import coco_rle_to_mask
from coral_core.taxonomy import (
    BACKGROUND_NAME,
    BUILTIN_TAXONOMIES,
    MaskEncoding,
    Taxonomy,
    TaxonomyError,
    get_taxonomy,
)

MASK_SUFFIXES = (".png", ".tif", ".tiff")
PREPARE_FORMAT = "coralseg-mmseg-dataset/1"
SPLITS = ("train", "val", "test")
# A 'coralseg infer' output may record its model's encoding (MaskEncoding.to_dict()) here;
# without it, classes.txt says what the values mean.
ENCODING_FILE = "encoding.json"

Kind = Literal["masks", "prepare", "infer"]
# (label, value, mask in box, left, top, score)
InstanceTuple = tuple[str, int, np.ndarray, int, int, float | None]


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
    if (root / "manifest.json").is_file():
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
    path = root / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        encoding = MaskEncoding.from_dict(manifest["encoding"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CoralsegError(
            f"{path} is not a readable 'coralseg prepare' manifest: {err}"
        ) from None
    return _with_taxonomy(encoding, taxonomy, path)


def _infer_encoding(root: Path, taxonomy: str | None) -> MaskEncoding:
    encoding_path = root / ENCODING_FILE
    if encoding_path.is_file():
        try:
            data = json.loads(encoding_path.read_text(encoding="utf-8"))
            encoding = MaskEncoding.from_dict(data.get("encoding", data))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise CoralsegError(f"{encoding_path} is not a readable mask encoding: {err}") from None
        return _with_taxonomy(encoding, taxonomy, encoding_path)
    path = root / "classes.txt"
    if not path.is_file():
        raise CoralsegError(
            f"{root} has neither {ENCODING_FILE} nor classes.txt to say what its masks mean; "
            "it is not a complete 'coralseg infer' output"
        )
    return _with_taxonomy(encoding_from_classes_file(path), taxonomy, path)


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


def encoding_from_classes_file(path: str | os.PathLike) -> MaskEncoding:
    """The mask convention a ``classes.txt`` describes (as ``coralseg prepare`` writes it).

    Line ``i`` names pixel value ``i``. A first line ``background`` means 0 = background,
    1..N = classes; otherwise 0..N-1 are the classes and 255 is background and ignore.
    Colours come from a ``palette.txt`` beside it (``R G B`` per line), when present. When
    the names are those of a built-in taxonomy, that taxonomy is used (with its colony and
    cover-only classes); otherwise every class counts as a colony class.
    """
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as err:
        raise CoralsegError(f"cannot read the classes file {path}: {err.strerror}") from None
    names = [n for n in names if n]
    has_background = bool(names) and names[0].casefold() == BACKGROUND_NAME
    classes = names[1:] if has_background else names
    if not classes:
        raise CoralsegError(f"the classes file {path} names no class; write one name per line")
    colors = _palette(path.with_name("palette.txt"), len(names))
    if colors is not None and has_background:
        colors = colors[1:]
    builtin = next((t for t in BUILTIN_TAXONOMIES.values() if t.classes == tuple(classes)), None)
    if builtin is not None:
        taxonomy = builtin
    else:
        try:
            taxonomy = Taxonomy(path.stem, tuple(classes), tuple(colors or ()))
        except TaxonomyError as err:
            raise CoralsegError(f"the classes file {path}: {err}") from None
    return MaskEncoding(taxonomy, background_is_ignore=not has_background)


def _palette(path: Path, count: int) -> list[tuple[int, int, int]] | None:
    if not path.is_file():
        return None
    try:
        rows = [tuple(int(v) for v in line.split()) for line in path.read_text().splitlines()]
    except ValueError:
        return None
    rows = [r for r in rows if r]
    if len(rows) != count or any(len(r) != 3 for r in rows):
        return None
    return rows  # type: ignore[return-value]


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
    return encoding_from_classes_file(classes_file)


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
    try:
        source = Path(json.loads(item.record.read_text(encoding="utf-8")).get("file_name", ""))
    except (OSError, ValueError, AttributeError):
        return None
    if source.suffix.lower() not in (".tif", ".tiff") or not source.is_file():
        return None
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(source) as dataset:
            return _geo_of(dataset)
    except (RasterioError, OSError):
        return None


def read_instances(item: MaskItem, encoding: MaskEncoding) -> Iterator[InstanceTuple]:
    """The colonies an infer record lists, each inside its box.

    Accepts a full-image COCO RLE under ``rle`` or ``segmentation``, or a box-local one under
    ``box_rle``/``mask_rle`` (its ``size`` the box's), with a COCO ``bbox``.

    Raises:
        CoralsegError: the record is unreadable or an instance is malformed.
    """
    if item.record is None:
        return
    try:
        record = json.loads(item.record.read_text(encoding="utf-8"))
        instances = record.get("instances", [])
    except (OSError, ValueError, AttributeError) as err:
        raise CoralsegError(f"cannot read the instance record {item.record}: {err}") from None
    for number, instance in enumerate(instances, start=1):
        try:
            label = str(instance["label"])
            value = int(instance["value"]) if "value" in instance else encoding.value_of(label)
            x, y, w, h = (round(float(v)) for v in instance["bbox"])
            score = instance.get("score")
            box_rle = instance.get("box_rle") or instance.get("mask_rle")
            if box_rle is not None:
                box = coco_rle_to_mask(box_rle)
            else:
                full = coco_rle_to_mask(instance.get("rle") or instance["segmentation"])
                box = full[y : y + h, x : x + w]
        except (KeyError, TypeError, ValueError) as err:
            raise CoralsegError(
                f"instance {number} of {item.record} is malformed ({err!r}); rerun "
                "'coralseg infer --redo' on that image"
            ) from None
        yield label, value, box, x, y, None if score is None else float(score)
