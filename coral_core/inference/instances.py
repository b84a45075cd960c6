"""Instance stage: the semantic summary refined into coral colonies with SAM / CoralSCoP.

Only *colony classes* make colonies (:attr:`coral_core.taxonomy.Taxonomy.cover_classes`
are cover only: bare substrate, sand, "unknown" have cover but no colonies). For each pixel
the *coral probability* is the summed probability of the colony classes
(:mod:`coral_core.inference.prediction`). With ``min_threshold <= unsure_threshold``:

* coral probability ``< min_threshold``: **not coral**. Never part of a colony.
* ``>= unsure_threshold``: **coral**. Connected regions of coral pixels sharing their most
  likely *colony* class are the *proposals* (also where background or a cover class is the
  overall argmax: a pixel that is more likely coral than not keeps its genus); each proposal
  of at least ``min_area`` pixels keeps all its pixels.
* in between: **unsure**. SAM decides: an unsure pixel joins a colony where that colony's
  SAM mask covers it, and stays unclaimed otherwise.

Each proposal prompts SAM with its bounding box grown by ``box_margin``; SAM's mask is taken
inside that box. The colony is the proposal plus the unsure-or-coral pixels of SAM's mask.
With CoralSCoP, a mask whose coral/non-coral head says "not coral" (probability < 0.5) adds
nothing beyond the proposal.

Models without a "not coral" output (background as ignore and no cover class, e.g. the
seed's 16-genus setup) put every pixel in some genus: their coral probability is 1
everywhere. For them the thresholds cannot separate coral from not coral, so CoralSCoP's
head decides: every pixel is coral, and colonies whose CoralSCoP mask is "not coral" are
dropped. Without CoralSCoP such a model is refused with a sentence saying what to do.

A colony's class is the colony class with the largest mean probability over its pixels, a
pixel counting its most likely colony class's probability (and 0 for the others); its score
is that mean times SAM's predicted IoU. Overlaps go to the higher score; colonies left with
fewer than ``min_area`` pixels are dropped.

The refined semantic mask paints each colony with its class; elsewhere it keeps the raw
argmax where that is background or a cover class, and is background where the raw argmax
was a colony class that no colony claimed.

Every colony is kept inside its box, so the cost of a colony is proportional to its box,
not to the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from coral_core.errors import CoralsegError
from coral_core.inference.prediction import SemanticPrediction, can_tell_not_coral
from coral_core.polygons import foreground_box
from coral_core.rle import box_mask_to_coco_rle
from coral_core.taxonomy import MaskEncoding

DEFAULT_MIN_THRESHOLD = 0.05
DEFAULT_UNSURE_THRESHOLD = 0.2
DEFAULT_MIN_AREA = 64
CORAL_HEAD_THRESHOLD = 0.5


@dataclass(frozen=True)
class RefineSettings:
    """Thresholds of the instance stage (see the module docstring for their meaning)."""

    min_threshold: float = DEFAULT_MIN_THRESHOLD
    unsure_threshold: float = DEFAULT_UNSURE_THRESHOLD
    min_area: int = DEFAULT_MIN_AREA
    box_margin: float = 0.1  # proposal boxes grow by this fraction per side for SAM
    prompts_per_batch: int | None = None  # SAM prompts decoded together (None: the runner's)

    def __post_init__(self) -> None:
        if not 0 <= self.min_threshold <= self.unsure_threshold <= 1:
            raise CoralsegError(
                "thresholds must satisfy 0 <= min_threshold <= unsure_threshold <= 1, got "
                f"{self.min_threshold} and {self.unsure_threshold}",
                settings=["min_threshold", "unsure_threshold"],
            )
        if self.min_area < 1:
            raise CoralsegError(
                f"min_area must be at least 1 pixel, got {self.min_area}", settings=["min_area"]
            )


@dataclass(frozen=True, eq=False)
class CoralInstance:
    """One colony, stored inside its box.

    Attributes:
        label: class name; ``value``: its pixel value in the encoding.
        score: in [0, 1].
        bbox: ``(x, y, w, h)`` in pixels, COCO convention: the tight box of the colony.
        mask: ``(h, w)`` bool, the colony's pixels inside ``bbox``.
        area: pixels.
    """

    label: str
    value: int
    score: float
    bbox: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False)
    area: int

    def coco_rle(self, height: int, width: int) -> dict:
        """COCO RLE of the colony over an ``height x width`` image (cost ~ the box)."""
        x, y = self.bbox[:2]
        return box_mask_to_coco_rle(self.mask, x, y, height, width)

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """``(height, width)`` bool mask of the colony over the whole image."""
        x, y, w, h = self.bbox
        full = np.zeros((height, width), dtype=bool)
        full[y : y + h, x : x + w] = self.mask
        return full


@dataclass(frozen=True)
class InstanceResult:
    """Output of the instance stage for one image.

    Attributes:
        instances: sorted by decreasing score.
        semantic: ``(H, W)`` uint8 refined semantic mask (encoding values).
        zones: ``(H, W)`` uint8: 0 not coral, 1 unsure, 2 coral (before refinement).
    """

    instances: tuple[CoralInstance, ...]
    semantic: np.ndarray
    zones: np.ndarray


@dataclass(frozen=True)
class TwoStageResult:
    """Everything inference says about one image.

    Attributes:
        semantic_raw: ``(H, W)`` uint8 argmax of the semantic model.
        instances: the refined result (instances + refined semantic mask + zones).
    """

    semantic_raw: np.ndarray
    instances: InstanceResult


def zone_map(coral: np.ndarray, settings: RefineSettings) -> np.ndarray:
    """0 not coral, 1 unsure, 2 coral, as uint8 ``(H, W)`` from an ``(H, W)`` coral probability."""
    zones = np.zeros(coral.shape, dtype=np.uint8)
    zones[coral >= settings.min_threshold] = 1
    zones[coral >= settings.unsure_threshold] = 2
    return zones


@dataclass(frozen=True, eq=False)
class Proposal:
    """A connected region of coral pixels of one colony class.

    Attributes:
        mask: ``(h, w)`` bool, the region inside ``box``.
        box: ``(x0, y0, x1, y1)``, ends exclusive.
        value: the colony class's encoding value.
    """

    mask: np.ndarray
    box: tuple[int, int, int, int]
    value: int


def proposals(
    colony_labels: np.ndarray, zones: np.ndarray, encoding: MaskEncoding, min_area: int
) -> list[Proposal]:
    """Connected regions (8-connectivity) of coral pixels sharing their most likely colony
    class, of at least ``min_area`` pixels.

    Args:
        colony_labels: ``(H, W)`` uint8 most likely colony class per pixel.
        zones: ``(H, W)`` uint8 zone map.
    """
    found = []
    coral = zones == 2
    for value in encoding.colony_values:
        region = coral & (colony_labels == value)
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
            found.append(Proposal(mask, (int(x), int(y), int(x + w), int(y + h)), value))
    return found


def refine(
    prediction: SemanticPrediction,
    encoding: MaskEncoding,
    sam=None,
    settings: RefineSettings | None = None,
) -> InstanceResult:
    """Turn the semantic stage's summary into coral colonies.

    Args:
        prediction: the semantic stage's output for the image.
        encoding: the model's mask encoding.
        sam: a :class:`coral_core.sam_models.SamRunner` whose image is set to this image, or
            None to keep the proposals as they are (semantic regions only).
        settings: thresholds (default: :class:`RefineSettings` defaults).

    Raises:
        CoralsegError: the model has no "not coral" output and no CoralSCoP head decides.
    """
    settings = settings or RefineSettings()
    height, width = prediction.shape
    coral_head_decides = not can_tell_not_coral(encoding)
    if coral_head_decides and not (sam is not None and sam.has_category_head):
        raise CoralsegError(
            f"this model's classes ({', '.join(encoding.taxonomy.classes)}) are all colony "
            "classes and background is ignored, so it cannot tell coral from not coral and "
            "every pixel would join a colony. Give a CoralSCoP checkpoint (vit_b_coralscop.pth) "
            "as the SAM model, whose coral head decides; or train with a background class "
            "(prepare the data with background as a class, not ignored); or mark cover-only "
            "classes (cover: true) in the taxonomy",
            settings=["sam_checkpoint"],
        )
    if coral_head_decides:
        zones = np.full((height, width), 2, dtype=np.uint8)
    else:
        zones = zone_map(prediction.coral, settings)
    found = proposals(prediction.colony_labels, zones, encoding, settings.min_area)
    candidates = _candidates(found, zones, sam, settings, coral_head_decides)

    scored = []
    for mask, (x0, y0, x1, y1), sam_iou in candidates:
        value, mean = _best_class(
            prediction.colony_labels[y0:y1, x0:x1][mask],
            prediction.colony_probability[y0:y1, x0:x1][mask],
        )
        scored.append((mean * sam_iou, value, mask, (x0, y0)))
    scored.sort(key=lambda item: -item[0])

    owner = np.zeros((height, width), dtype=bool)
    semantic = _unclaimed_semantic(prediction.labels, encoding)
    instances = []
    for score, value, mask, (x0, y0) in scored:
        h, w = mask.shape
        free = mask & ~owner[y0 : y0 + h, x0 : x0 + w]
        area = int(free.sum())
        if area < settings.min_area:
            continue
        owner[y0 : y0 + h, x0 : x0 + w] |= free
        semantic[y0 : y0 + h, x0 : x0 + w][free] = value
        left, top, right, bottom = foreground_box(free)
        crop = free[top:bottom, left:right]
        bbox = (x0 + left, y0 + top, right - left, bottom - top)
        instances.append(
            CoralInstance(
                encoding.label_names[value], value, round(score, 6), bbox, crop.copy(), area
            )
        )
    return InstanceResult(tuple(instances), semantic, zones)


def _best_class(labels: np.ndarray, probability: np.ndarray) -> tuple[int, float]:
    """The colony class with the largest summed probability over the pixels, and its mean."""
    sums = np.bincount(labels, weights=probability.astype(np.float64), minlength=256)
    value = int(sums.argmax())
    return value, float(sums[value] / max(labels.size, 1))


def _unclaimed_semantic(labels: np.ndarray, encoding: MaskEncoding) -> np.ndarray:
    """The refined mask before colonies are painted: background where a colony class was."""
    semantic = labels.copy()
    colony = np.zeros(256, dtype=bool)
    colony[list(encoding.colony_values)] = True
    semantic[colony[labels]] = encoding.background_value
    return semantic


def prompt_boxes(found: list[Proposal], margin: float, height: int, width: int) -> np.ndarray:
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
    proposal: Proposal,
    zones: np.ndarray,
    sam_mask: np.ndarray,
    sam_box: tuple[int, int, int, int],
    sam_iou: float = 1.0,
    coral_score: float | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """The colony mask of a proposal given SAM's mask for it.

    Args:
        proposal: a coral region.
        zones: ``(H, W)`` uint8 zone map (0 not coral, 1 unsure, 2 coral).
        sam_mask: ``(h, w)`` bool mask SAM predicted, inside ``sam_box``.
        sam_box: ``(x0, y0, x1, y1)`` of ``sam_mask`` (ends exclusive); it contains the
            proposal's box.
        sam_iou: SAM's predicted IoU, clipped to [0, 1].
        coral_score: CoralSCoP's coral probability, or None (plain SAM).

    Returns:
        ``(mask, box, iou)``: the proposal plus the pixels of SAM's mask that are not "not
        coral", cropped to its tight box ``(x0, y0, x1, y1)``.
    """
    sx0, sy0, sx1, sy1 = sam_box
    keep_sam = coral_score is None or coral_score >= CORAL_HEAD_THRESHOLD
    if keep_sam:
        grown = sam_mask & (zones[sy0:sy1, sx0:sx1] >= 1)
    else:
        grown = np.zeros((sy1 - sy0, sx1 - sx0), dtype=bool)
    x0, y0, x1, y1 = proposal.box
    grown[y0 - sy0 : y1 - sy0, x0 - sx0 : x1 - sx0] |= proposal.mask
    left, top, right, bottom = foreground_box(grown)
    box = (sx0 + left, sy0 + top, sx0 + right, sy0 + bottom)
    return grown[top:bottom, left:right], box, min(max(float(sam_iou), 0.0), 1.0)


def _candidates(found, zones, sam, settings, coral_head_decides):
    """``(mask in box, box, sam_iou)`` per proposal: the proposal grown by SAM's mask.

    Where the coral head decides (see the module docstring), proposals whose CoralSCoP mask
    is "not coral" are dropped instead.
    """
    if sam is None or not found:
        return [(p.mask, p.box, 1.0) for p in found]
    height, width = zones.shape
    prompts = prompt_boxes(found, settings.box_margin, height, width)
    windows = [
        (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
        for x0, y0, x1, y1 in prompts
    ]
    candidates = []
    # Masks come back cropped to their windows, so all prompts can go at once: the runner
    # decodes them in its own batches.
    step = settings.prompts_per_batch or len(found)
    for start in range(0, len(found), step):
        batch = slice(start, start + step)
        predicted = sam.predict_boxes(prompts[batch], crops=windows[batch])
        for offset, sam_mask in enumerate(predicted.masks):
            index = start + offset
            coral = None if predicted.coral_scores is None else predicted.coral_scores[offset]
            if coral_head_decides and coral is not None and coral < CORAL_HEAD_THRESHOLD:
                continue
            candidates.append(
                grow_proposal(
                    found[index],
                    zones,
                    sam_mask,
                    windows[index],
                    predicted.iou_scores[offset],
                    None if coral_head_decides else coral,
                )
            )
    return candidates
