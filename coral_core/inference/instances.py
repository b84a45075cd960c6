"""Instance stage: semantic probabilities refined into coral colonies with SAM / CoralSCoP.

For each pixel, the *coral probability* is its best probability among the taxonomy's classes
(background excluded). With thresholds ``min_threshold <= unsure_threshold``:

* coral probability ``< min_threshold``: **not coral**. Never part of an instance.
* ``>= unsure_threshold``: **coral**. Connected regions of coral pixels with the same most
  likely class are the *proposals*; each keeps all its pixels.
* in between: **unsure**. SAM decides: an unsure pixel joins an instance where that
  instance's SAM mask covers it, and is background otherwise.

Each proposal (at least ``min_area`` pixels) prompts SAM with its bounding box; the instance
is the proposal plus the unsure-or-coral pixels of SAM's mask. With CoralSCoP, a mask whose
coral/non-coral head says "not coral" (probability < 0.5) adds nothing beyond the proposal.
The instance's class is the one with the highest mean probability over its pixels; its score
is that mean probability times SAM's predicted IoU. Overlaps go to the higher score;
instances left with fewer than ``min_area`` pixels are dropped. The refined semantic mask
paints each instance with its class on background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from coral_core.errors import CoralsegError
from coral_core.rle import mask_to_coco_rle
from coral_core.taxonomy import MaskEncoding

DEFAULT_MIN_THRESHOLD = 0.05
DEFAULT_UNSURE_THRESHOLD = 0.2
DEFAULT_MIN_AREA = 64


@dataclass(frozen=True)
class RefineSettings:
    """Thresholds of the instance stage (see the module docstring for their meaning)."""

    min_threshold: float = DEFAULT_MIN_THRESHOLD
    unsure_threshold: float = DEFAULT_UNSURE_THRESHOLD
    min_area: int = DEFAULT_MIN_AREA
    box_margin: float = 0.1  # proposal boxes grow by this fraction per side for SAM
    prompts_per_batch: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.min_threshold <= self.unsure_threshold <= 1:
            raise CoralsegError(
                "thresholds must satisfy 0 <= --min-threshold <= --unsure-threshold <= 1, got "
                f"{self.min_threshold} and {self.unsure_threshold}"
            )
        if self.min_area < 1:
            raise CoralsegError(f"--min-area must be at least 1 pixel, got {self.min_area}")


@dataclass(frozen=True)
class CoralInstance:
    """One colony.

    Attributes:
        label: class name; ``value``: its pixel value in the encoding.
        score: in [0, 1].
        rle: COCO RLE of the mask over the whole image (``{"size": [h, w], "counts": str}``).
        bbox: ``(x, y, w, h)`` in pixels, COCO convention.
        area: pixels.
    """

    label: str
    value: int
    score: float
    rle: dict
    bbox: tuple[int, int, int, int]
    area: int


@dataclass(frozen=True)
class InstanceResult:
    """Output of the instance stage for one image.

    Attributes:
        instances: sorted by decreasing score.
        semantic: ``(H, W)`` uint8 refined semantic mask (encoding values; background where
            no instance lies).
        zones: ``(H, W)`` uint8: 0 not coral, 1 unsure, 2 coral (before refinement).
    """

    instances: tuple[CoralInstance, ...]
    semantic: np.ndarray
    zones: np.ndarray


def coral_probability(probabilities: np.ndarray, encoding: MaskEncoding) -> np.ndarray:
    """Best class probability per pixel, background excluded: ``(H, W)`` float32."""
    first = encoding.first_class_value
    return probabilities[first:].max(axis=0).astype(np.float32)


def zone_map(coral: np.ndarray, settings: RefineSettings) -> np.ndarray:
    """0 not coral, 1 unsure, 2 coral, as uint8 ``(H, W)``."""
    zones = np.zeros(coral.shape, dtype=np.uint8)
    zones[coral >= settings.min_threshold] = 1
    zones[coral >= settings.unsure_threshold] = 2
    return zones


@dataclass(frozen=True)
class _Proposal:
    mask: np.ndarray  # (h, w) bool in its box
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive)
    value: int


def proposals(
    labels: np.ndarray, zones: np.ndarray, encoding: MaskEncoding, min_area: int
) -> list[_Proposal]:
    """Connected regions of coral pixels sharing their most likely class."""
    found = []
    for value in range(
        encoding.first_class_value, encoding.first_class_value + encoding.taxonomy.num_classes
    ):
        region = (labels == value) & (zones == 2)
        if not region.any():
            continue
        count, components, stats, _ = cv2.connectedComponentsWithStats(
            region.view(np.uint8), connectivity=8
        )
        for index in range(1, count):
            x, y, w, h, area = stats[index]
            if area < min_area:
                continue
            mask = components[y : y + h, x : x + w] == index
            found.append(_Proposal(mask, (int(x), int(y), int(x + w), int(y + h)), value))
    return found


def refine(
    probabilities: np.ndarray,
    encoding: MaskEncoding,
    sam=None,
    settings: RefineSettings | None = None,
) -> InstanceResult:
    """Turn class probabilities into coral instances.

    Args:
        probabilities: ``(C, H, W)`` float softmax of the semantic model (channel = value).
        encoding: the model's mask encoding.
        sam: a :class:`coral_core.sam_models.SamRunner` whose image is set to this image, or
            None to keep the proposals as they are (semantic regions only).
        settings: thresholds (default: :class:`RefineSettings` defaults).
    """
    settings = settings or RefineSettings()
    if probabilities.ndim != 3 or probabilities.shape[0] != encoding.num_labels:
        raise ValueError(
            f"expected ({encoding.num_labels}, H, W) probabilities, got {probabilities.shape}"
        )
    height, width = probabilities.shape[1:]
    labels = probabilities.argmax(axis=0)
    zones = zone_map(coral_probability(probabilities, encoding), settings)
    found = proposals(labels, zones, encoding, settings.min_area)
    candidates = _sam_masks(found, zones, sam, settings, height, width)

    # Score and class of each candidate from the probabilities inside it.
    scored = []
    for mask, (x0, y0, x1, y1), sam_iou in candidates:
        window = probabilities[encoding.first_class_value :, y0:y1, x0:x1]
        means = window[:, mask].mean(axis=1)
        best = int(means.argmax())
        scored.append(
            (float(means[best]) * sam_iou, best + encoding.first_class_value, mask, (x0, y0))
        )
    scored.sort(key=lambda item: -item[0])

    owner = np.zeros((height, width), dtype=bool)
    semantic = np.full((height, width), encoding.background_value, dtype=np.uint8)
    instances = []
    for score, value, mask, (x0, y0) in scored:
        h, w = mask.shape
        free = mask & ~owner[y0 : y0 + h, x0 : x0 + w]
        area = int(free.sum())
        if area < settings.min_area:
            continue
        owner[y0 : y0 + h, x0 : x0 + w] |= free
        semantic[y0 : y0 + h, x0 : x0 + w][free] = value
        full = np.zeros((height, width), dtype=bool)
        full[y0 : y0 + h, x0 : x0 + w] = free
        ys, xs = np.nonzero(free)
        bbox = (
            x0 + int(xs.min()),
            y0 + int(ys.min()),
            int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1),
        )
        name = encoding.label_names[value]
        instances.append(
            CoralInstance(name, value, round(score, 6), mask_to_coco_rle(full), bbox, area)
        )
    return InstanceResult(tuple(instances), semantic, zones)


def prompt_boxes(found: list[_Proposal], margin: float, height: int, width: int) -> np.ndarray:
    """SAM box prompts: each proposal's box grown by ``margin`` per side, ``(N, 4)`` XYXY."""
    boxes = np.array([p.box for p in found], dtype=np.float64).reshape(-1, 4)
    grow_w = (boxes[:, 2] - boxes[:, 0]) * margin
    grow_h = (boxes[:, 3] - boxes[:, 1]) * margin
    return np.stack(
        [
            np.clip(boxes[:, 0] - grow_w, 0, width),
            np.clip(boxes[:, 1] - grow_h, 0, height),
            np.clip(boxes[:, 2] + grow_w, 0, width),
            np.clip(boxes[:, 3] + grow_h, 0, height),
        ],
        axis=1,
    )


def grow_proposal(
    proposal: _Proposal,
    zones: np.ndarray,
    sam_mask: np.ndarray,
    sam_iou: float = 1.0,
    coral_score: float | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """The instance mask of a proposal given SAM's mask for it.

    Args:
        proposal: a coral region.
        zones: ``(H, W)`` uint8 zone map (0 not coral, 1 unsure, 2 coral).
        sam_mask: ``(H, W)`` bool mask SAM predicted for the proposal's box.
        sam_iou: SAM's predicted IoU, clipped to [0, 1].
        coral_score: CoralSCoP's coral probability, or None (plain SAM).

    Returns:
        ``(mask, box, iou)``: the proposal plus the pixels of SAM's mask that are not "not
        coral", cropped to its box ``(x0, y0, x1, y1)``.
    """
    keep_sam = coral_score is None or coral_score >= 0.5
    grown = sam_mask & (zones >= 1) if keep_sam else np.zeros(zones.shape, dtype=bool)
    x0, y0, x1, y1 = proposal.box
    grown[y0:y1, x0:x1] |= proposal.mask
    ys, xs = np.nonzero(grown)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return grown[box[1] : box[3], box[0] : box[2]], box, min(max(float(sam_iou), 0.0), 1.0)


def _sam_masks(found, zones, sam, settings, height, width):
    """``(mask in box, box, sam_iou)`` per proposal: the proposal grown by SAM's mask."""
    if sam is None or not found:
        return [(p.mask, p.box, 1.0) for p in found]
    prompts = prompt_boxes(found, settings.box_margin, height, width)
    candidates = []
    step = settings.prompts_per_batch
    for start in range(0, len(found), step):
        predicted = sam.predict_boxes(prompts[start : start + step])
        for offset, sam_mask in enumerate(predicted.masks):
            coral = None if predicted.coral_scores is None else predicted.coral_scores[offset]
            candidates.append(
                grow_proposal(
                    found[start + offset], zones, sam_mask, predicted.iou_scores[offset], coral
                )
            )
    return candidates
