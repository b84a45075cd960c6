"""Label masks on disk for ``fo.Segmentation`` fields, and the fields' mask targets.

Masks are 8-bit PNGs named after the sample id, in ``<root>/<field>/``; the default root is
``<FiftyOne's default dataset dir>/coralseg/<dataset name>/masks``. Pixel values follow the
model's :class:`coral_core.labels.taxonomy.MaskEncoding`, and the field's ``mask_targets`` name
them, so the App shows genus names and FiftyOne's evaluation reports them;
``dataset.info["coralseg"]["encodings"][field]`` records the whole encoding (cover-only
classes included) for the cover report.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from coral_core.atomic import atomic_path
from coral_core.formats.label_rasters import read_label_mask
from coral_core.labels.palette import to_hex
from coral_core.labels.taxonomy import MaskEncoding

INFO_KEY = "coralseg"


def default_mask_root(dataset) -> Path:
    """``<fo.config.default_dataset_dir>/coralseg/<dataset name>/masks``."""
    import fiftyone as fo

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset.name).strip(".") or "dataset"
    return Path(fo.config.default_dataset_dir).expanduser() / "coralseg" / safe / "masks"


def write_mask(folder: Path, sample_id: str, mask: np.ndarray) -> str:
    """Write an ``(H, W)`` uint8 mask as ``folder/<sample_id>.png`` (atomically); its path."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 mask, got {mask.shape} {mask.dtype}")
    path = folder / f"{sample_id}.png"
    with atomic_path(path) as partial:
        Image.fromarray(mask).save(partial, format="PNG")
    return str(path)


def read_mask(path: str | Path) -> np.ndarray:
    """An ``(H, W)`` uint8/uint16 label mask (a PNG written by :func:`write_mask`, or any
    single-channel PNG or TIFF), read by the one label-mask reader,
    :func:`coral_core.formats.label_rasters.read_label_mask`.

    Raises:
        CoralsegError: unreadable, or not one channel of class values (e.g. an RGB mask).
    """
    return read_label_mask(path)[0]


def mask_targets(encoding: MaskEncoding) -> dict[int, str]:
    """``{pixel value: label name}`` for values ``0..num_labels-1``."""
    return dict(enumerate(encoding.label_names))


def set_segmentation_targets(dataset, fields: list[str], encoding: MaskEncoding) -> None:
    """Name the pixel values of ``fields`` and colour them with the taxonomy's palette."""
    import fiftyone as fo

    targets = mask_targets(encoding)
    for field in fields:
        dataset.mask_targets[field] = targets
    colors = [
        {"intTarget": value, "color": to_hex(color)} for value, color in enumerate(encoding.palette)
    ]
    scheme = dataset.app_config.color_scheme or fo.ColorScheme()
    entries = [f for f in (scheme.fields or []) if f.get("path") not in fields]
    entries += [{"path": field, "maskTargetsColors": colors} for field in fields]
    scheme.fields = entries
    dataset.app_config.color_scheme = scheme
    info = dict(dataset.info.get(INFO_KEY) or {})
    encodings = dict(info.get("encodings") or {})
    encodings.update({field: encoding.to_dict() for field in fields})
    dataset.info[INFO_KEY] = {**info, "encodings": encodings}
    dataset.save()


def field_encoding(dataset, field: str) -> MaskEncoding | None:
    """The encoding recorded for a mask field written by coralseg, else None."""
    recorded = (dataset.info.get(INFO_KEY) or {}).get("encodings", {}).get(field)
    return MaskEncoding.from_dict(recorded) if recorded else None
