"""Point labels spread into pseudo-masks over superpixels (multi-level, as in CoralSeg).

A sparse mask (classes at the points, 255 elsewhere) becomes a denser one: each superpixel
(:mod:`coral_core.labels.superpixels`) that holds labelled pixels takes their majority class. This
runs at several superpixel sizes, coarse first, each finer level overwriting the coarser
where it has points (fine regions follow colony edges better; coarse ones reach further
from the points). This is Alonso et al.'s multi-level superpixel augmentation (CoralSeg,
JFR 2019). Superpixels rather than DINOv2 features with nearest neighbours: they need no
pretrained weights (coralseg must work offline; random DINOv2 weights give meaningless
features), cost time linear in the pixels, and give the same mask on every run.

The original point pixels always keep their own class. Regions with no point stay 255.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from coral_core.labels.superpixels import slic
from coral_core.labels.taxonomy import IGNORE_INDEX

DEFAULT_LEVELS = (30, 100, 300, 1000)  # superpixels per image, coarse to fine
DEFAULT_WORK_SIDE = 480  # superpixels are computed on the photo shrunk to this long side


def superpixel_levels(
    image: np.ndarray,
    levels: Sequence[int] = DEFAULT_LEVELS,
    work_side: int = DEFAULT_WORK_SIDE,
) -> list[np.ndarray]:
    """The superpixels of a photo at each level, for :func:`densify_points`.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo.
        levels: superpixel counts, coarse to fine.
        work_side: long side in pixels at which superpixels are computed (the cost is
            that of a photo this size; regions are scaled back up to the photo).

    Returns:
        One ``(H, W)`` int32 region map per level, in the order of ``levels``.
    """
    if not levels:
        raise ValueError("name at least one superpixel level")
    height, width = image.shape[:2]
    scale = min(1.0, work_side / max(height, width))
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA) if scale < 1 else image
    maps = []
    for segments in levels:
        regions = slic(small, segments)
        if scale < 1:
            regions = cv2.resize(regions, (width, height), interpolation=cv2.INTER_NEAREST)
        maps.append(regions)
    return maps


def densify_points(
    sparse: np.ndarray, regions: Sequence[np.ndarray], ignore: int = IGNORE_INDEX
) -> np.ndarray:
    """A pseudo-mask spreading each point's class over the superpixels around it.

    Args:
        sparse: ``(H, W)`` uint8 mask: classes at labelled pixels, ``ignore`` elsewhere.
        regions: the photo's region maps, coarse to fine (:func:`superpixel_levels`), each
            ``(H, W)`` int.
        ignore: the unlabelled value.

    Returns:
        ``(H, W)`` uint8 mask; every labelled pixel of ``sparse`` keeps its value.
    """
    if not regions:
        raise ValueError("name at least one superpixel level")
    for level in regions:
        if level.shape != sparse.shape:
            raise ValueError(f"regions {level.shape} and mask {sparse.shape} differ in size")
    labelled = sparse != ignore
    values = sparse[labelled].astype(np.int64)
    out = np.full_like(sparse, ignore)
    for level in regions:
        out = _vote(level, labelled, values, out, ignore)
    out[labelled] = sparse[labelled]
    return out


def _vote(
    regions: np.ndarray, labelled: np.ndarray, values: np.ndarray, out: np.ndarray, ignore: int
) -> np.ndarray:
    """``out`` with every region holding labelled pixels set to their majority value."""
    count = int(regions.max()) + 1
    votes = np.zeros((count, 256), np.int64)
    np.add.at(votes, (regions[labelled], values), 1)
    has_votes = votes.sum(axis=1) > 0
    winner = np.where(has_votes, votes.argmax(axis=1), ignore).astype(np.uint8)
    spread = winner[regions]
    return np.where(spread != ignore, spread, out)
