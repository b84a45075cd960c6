"""SLIC superpixels (Achanta et al., TPAMI 2012) in NumPy: compact regions of similar colour.

Each region is a k-means cluster in (CIELAB colour, position) space, seeded on a regular
grid. As in SLIC, a pixel is compared only with the seeds near it: here those of its own
grid cell and the eight around it, which keeps the cost linear in the pixels. Regions are
not forced to be connected (the densification that uses them does not need it).
"""

from __future__ import annotations

import cv2
import numpy as np


def slic(
    image: np.ndarray, segments: int, compactness: float = 10.0, iterations: int = 6
) -> np.ndarray:
    """Superpixels of an RGB image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        segments: about how many regions (the seed grid has that many cells).
        compactness: weight of distance in space against distance in colour (SLIC's ``m``;
            larger gives rounder, more regular regions).
        iterations: k-means rounds.

    Returns:
        ``(H, W)`` int32 region index per pixel, ``0 .. gh * gw - 1`` (seed grid cells).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"slic needs an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}"
        )
    if segments < 1:
        raise ValueError(f"segments must be 1 or more, got {segments}")
    height, width = image.shape[:2]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    # OpenCV scales 8-bit L to 0..255; back to CIELAB's 0..100 so `compactness` means SLIC's m.
    lab[..., 0] *= 100.0 / 255.0
    step = float(np.sqrt(height * width / segments))
    grid_h = max(1, round(height / step))
    grid_w = max(1, round(width / step))
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width, dtype=np.float32)[None, :]
    cell_r = np.minimum((np.arange(height) * grid_h) // height, grid_h - 1)[:, None]
    cell_c = np.minimum((np.arange(width) * grid_w) // width, grid_w - 1)[None, :]

    seed_y = (np.arange(grid_h, dtype=np.float32) + 0.5) * height / grid_h
    seed_x = (np.arange(grid_w, dtype=np.float32) + 0.5) * width / grid_w
    centre_y = np.repeat(seed_y, grid_w)
    centre_x = np.tile(seed_x, grid_h)
    centre_lab = lab[centre_y.astype(int), centre_x.astype(int)].copy()
    spatial = (compactness / step) ** 2
    count = grid_h * grid_w
    labels = np.zeros((height, width), np.int32)
    for _ in range(iterations):
        best = np.full((height, width), np.inf, np.float32)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r = cell_r + dr
                c = cell_c + dc
                valid = (r >= 0) & (r < grid_h) & (c >= 0) & (c < grid_w)
                k = (np.clip(r, 0, grid_h - 1) * grid_w + np.clip(c, 0, grid_w - 1)).astype(
                    np.int32
                )
                k = np.broadcast_to(k, (height, width))
                colour = ((lab - centre_lab[k]) ** 2).sum(axis=2)
                place = (rows - centre_y[k]) ** 2 + (cols - centre_x[k]) ** 2
                distance = np.where(
                    np.broadcast_to(valid, k.shape), colour + spatial * place, np.inf
                )
                closer = distance < best
                best[closer] = distance[closer]
                labels[closer] = k[closer]
        flat = labels.ravel()
        sizes = np.bincount(flat, minlength=count).astype(np.float32)
        occupied = sizes > 0
        ys = np.broadcast_to(rows, (height, width)).ravel()
        xs = np.broadcast_to(cols, (height, width)).ravel()
        centre_y[occupied] = (np.bincount(flat, ys, count) / np.maximum(sizes, 1))[occupied]
        centre_x[occupied] = (np.bincount(flat, xs, count) / np.maximum(sizes, 1))[occupied]
        for channel in range(3):
            sums = np.bincount(flat, lab[..., channel].ravel(), count)
            centre_lab[occupied, channel] = (sums / np.maximum(sizes, 1))[occupied]
    return labels
