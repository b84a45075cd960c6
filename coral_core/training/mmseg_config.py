"""What MMSeg configs take from coral_core, so class lists live only in the taxonomy
(:mod:`coral_core.labels.taxonomy`).

Config files import this module (``import coral_core.training.mmseg_config as coral``, after their
``_base_`` line) and call :func:`metainfo` / :func:`num_labels`. ``coralseg train --data``
uses :func:`use_prepared_dataset` to point a config at a folder written by
``coralseg prepare`` and take its classes from the folder's manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.formats.dataset_manifest import read_dataset_manifest
from coral_core.labels.taxonomy import MaskEncoding, get_taxonomy

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def metainfo(taxonomy: str, background_is_ignore: bool = False) -> dict[str, Any]:
    """MMSeg ``metainfo`` (classes and palette of pixel values 0..N-1) of a taxonomy."""
    encoding = MaskEncoding(get_taxonomy(taxonomy), background_is_ignore)
    return _metainfo(encoding)


def num_labels(taxonomy: str, background_is_ignore: bool = False) -> int:
    """MMSeg ``num_classes`` of a taxonomy under the given background convention."""
    return MaskEncoding(get_taxonomy(taxonomy), background_is_ignore).num_labels


def _metainfo(encoding: MaskEncoding) -> dict[str, Any]:
    return {
        "classes": tuple(encoding.label_names),
        "palette": [list(color) for color in encoding.palette],
    }


def median_frequency_weights(
    pixels: Mapping[str, int], class_names: tuple[str, ...]
) -> list[float]:
    """Class weights by median frequency balancing (Eigen & Fergus 2015).

    ``weight_c = median(freq) / freq_c`` over classes present in the training split; absent
    classes get weight 0 (they cannot be learnt and must not dominate the loss).
    """
    counts = np.array([float(pixels.get(name, 0)) for name in class_names])
    present = counts > 0
    if not present.any():
        raise CoralsegError("the training split has no labelled pixels to weight classes by")
    frequencies = counts / counts[present].sum()
    median = float(np.median(frequencies[present]))
    weights = np.zeros_like(frequencies)
    weights[present] = median / frequencies[present]
    return [round(float(w), 6) for w in weights]


def use_prepared_dataset(cfg: Any, data_dir: str | Path) -> MaskEncoding:
    """Point every dataloader of an MMEngine ``Config`` at a ``coralseg prepare`` folder.

    Sets ``data_root`` and ``metainfo`` of the train/val/test datasets and the decode head's
    ``num_classes`` from the folder's manifest; splits the folder lacks keep the config's
    settings only if they are never used (a missing ``val`` split disables validation; a
    missing ``test`` split is refused by ``coralseg test``, never replaced by another).

    Returns:
        The folder's mask encoding (taxonomy and background convention).
    """
    data_dir = Path(data_dir).resolve()
    manifest = read_dataset_manifest(data_dir)
    encoding = manifest.encoding
    if "train" not in manifest.splits:
        raise CoralsegError(f"{data_dir} has no train split; tag some samples 'train'")
    for loader, split in zip(DATALOADERS, ("train", "val", "test"), strict=True):
        if cfg.get(loader) is None:
            continue
        dataset = cfg[loader]["dataset"]
        dataset["data_root"] = str(data_dir)
        dataset["metainfo"] = _metainfo(encoding)
        dataset["data_prefix"] = {"img_path": f"{split}/data", "seg_map_path": f"{split}/labels"}
        dataset.pop("indices", None)
    if "val" not in manifest.splits:
        for key in ("val_dataloader", "val_cfg", "val_evaluator"):
            cfg[key] = None
    cfg.model.decode_head.num_classes = encoding.num_labels
    return encoding


def encoding_dict(taxonomy: str, background_is_ignore: bool = False) -> dict[str, Any]:
    """Plain-data mask encoding of a taxonomy, stored in configs and checkpoints."""
    return MaskEncoding(get_taxonomy(taxonomy), background_is_ignore).to_dict()
