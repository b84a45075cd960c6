"""Overlays a person can read: class colours from the taxonomy over the photo, instance
outlines, and a legend of the classes present with their colony counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import cv2
import numpy as np

from coral_core.inference.instances import CoralInstance
from coral_core.labels.taxonomy import MaskEncoding

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def render_overlay(
    image: np.ndarray,
    semantic: np.ndarray,
    encoding: MaskEncoding,
    instances: Sequence[CoralInstance] = (),
    alpha: float = 0.45,
) -> np.ndarray:
    """Blend class colours onto an image and add a legend on the right.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        semantic: ``(H, W)`` uint8 mask in ``encoding``'s values; background and ignore are
            left uncoloured.
        instances: outlined in white, one contour per colony.
        alpha: opacity of the colours.

    Returns:
        ``(H, W + legend, 3)`` uint8 RGB.
    """
    if image.shape[:2] != semantic.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {semantic.shape} differ in size")
    lut = np.zeros((256, 3), np.uint8)
    for value, color in enumerate(encoding.palette):
        lut[value] = color
    colored = lut[semantic]
    painted = np.ones(semantic.shape, bool)
    painted[semantic == 255] = False
    if not encoding.background_is_ignore:
        painted[semantic == encoding.background_value] = False
    out = image.copy()
    out[painted] = (image[painted] * (1 - alpha) + colored[painted] * alpha).astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 800))
    for instance in instances:
        # Traced inside the colony's box, then drawn at its place: cost ~ the box.
        mask = np.pad(instance.mask.astype(np.uint8), 1)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        x, y = instance.bbox[:2]
        cv2.drawContours(out, contours, -1, (255, 255, 255), thickness, offset=(x - 1, y - 1))
    return np.concatenate([out, _legend(semantic, encoding, instances, image.shape[0])], axis=1)


def _legend(
    semantic: np.ndarray, encoding: MaskEncoding, instances: Sequence[CoralInstance], height: int
) -> np.ndarray:
    scale = max(0.5, height / 1400)
    row = int(34 * scale)
    width = int(330 * scale)
    panel = np.full((height, width, 3), 255, np.uint8)
    counts = Counter(instance.label for instance in instances)
    uncoloured = {255} if encoding.background_is_ignore else {255, encoding.background_value}
    present = sorted(set(np.unique(semantic).tolist()) - uncoloured)
    cv2.putText(
        panel, "classes (colonies)", (10, row), _FONT, 0.6 * scale, (0, 0, 0), 1, cv2.LINE_AA
    )
    for index, value in enumerate(present):
        y = row * (index + 2)
        if y + row > height:
            break
        name = encoding.label_names[value]
        color = tuple(int(c) for c in encoding.palette[value])
        cv2.rectangle(panel, (10, y - row + 8), (10 + row - 8, y), color, -1)
        cover_only = name in encoding.taxonomy.cover_classes
        text = f"{name} (cover)" if cover_only else f"{name} ({counts.get(name, 0)})"
        cv2.putText(panel, text, (20 + row, y - 4), _FONT, 0.55 * scale, (0, 0, 0), 1, cv2.LINE_AA)
    return panel
