"""Instance stage: the semantic summary refined into coral colonies with SAM / CoralSCoP.

Only *colony classes* make colonies (:attr:`coral_core.labels.taxonomy.Taxonomy.cover_classes`
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

Proposals are split and cleaned before SAM sees them, and colonies after:

* **Touching colonies of one genus** (``split_touching``): the semantic map cannot draw a
  border between two touching colonies of one genus, so their pixels form one proposal. A
  proposal is cut along the necks of its distance transform: the watershed of the distance
  to its border, from its local maxima, gives one basin per lobe; two adjacent basins stay
  one colony unless the neck between them (twice the distance at the saddle of their shared
  border) is narrower than ``neck_ratio`` times the thickness of the thinner lobe (twice its
  peak distance). Parts under ``min_area`` pixels join their neighbour with the widest neck.
  Each part is a proposal of its own: without SAM it is a colony; with SAM / CoralSCoP it
  prompts with its own box, so SAM separates the touching colonies where the photo shows a
  border, and the distance transform does where it does not.
* **Slivers**: a region thinner than ``min_thickness`` pixels everywhere (twice its largest
  distance to its border; e.g. a band of one genus along another colony's rim, a boundary
  artefact of the semantic model) is not a colony. Sliver proposals do not prompt SAM; their
  pixels, and those of any colony left thinner than ``min_thickness`` once overlaps are
  resolved, join the adjacent colony with which they share the longest border (taking its
  class), or are dropped where no colony touches them.

A colony's class is the colony class with the largest mean probability over its pixels, a
pixel counting its most likely colony class's probability (and 0 for the others); its score
is that mean times SAM's predicted IoU.

**One pixel, one colony** (nested and overlapping colonies): each proposal's own pixels
belong to its colony first, so a SAM mask that covers a neighbouring or enclosed colony
(a colony nested in another's hole) never takes that colony's confident pixels; the pixels
SAM adds (unsure ones) go to the colony of the higher score. Colonies left with fewer than
``min_area`` pixels are dropped. So every pixel belongs to at most one colony, and cover and
counts made from the colonies count no pixel twice.

The refined semantic mask paints each colony with its class; elsewhere it keeps the raw
argmax where that is background or a cover class, and is background where the raw argmax
was a colony class that no colony claimed.

Every colony, split and sliver is handled inside its box, so the cost of a colony is
proportional to its box, not to the image (bar one ``(H, W)`` int32 ownership map).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from coral_core.errors import CoralsegError
from coral_core.formats.polygons import foreground_box
from coral_core.formats.rle import box_mask_to_coco_rle
from coral_core.inference.prediction import SemanticPrediction, can_tell_not_coral
from coral_core.labels.taxonomy import MaskEncoding

DEFAULT_MIN_THRESHOLD = 0.05
DEFAULT_UNSURE_THRESHOLD = 0.2
DEFAULT_MIN_AREA = 500
DEFAULT_MIN_THICKNESS = 10
DEFAULT_NECK_RATIO = 0.7
CORAL_HEAD_THRESHOLD = 0.5


@dataclass(frozen=True)
class RefineSettings:
    """Thresholds of the instance stage (see the module docstring for their meaning).

    ``min_area`` and ``min_thickness`` are in pixels *at the model's working scale*: the size
    the semantic model sees a photo at (shrunk to the training photos' long side, then by the
    config's test ``Resize``; see :mod:`coral_core.inference.scaling`). A colony is as many
    model pixels on a 1000 px photo as on a 6000 px one, while a fixed count of photo pixels
    would keep specks on the large photo and drop colonies on the small one.
    :class:`coral_core.inference.pipeline.TwoStagePredictor` converts them to the photo's
    pixels (:meth:`at_photo_scale`); :func:`refine` itself reads them as pixels of the
    prediction it is given. ``neck_ratio`` is a ratio (0 never splits touching colonies).

    The defaults (``min_area`` 500, ``min_thickness`` 10 model pixels) were chosen on the
    Validation photos of ``coralseg demo``'s drawn sample (``bench/bench_colonies.py``: the
    smallest largest per-photo count error, then mean count error, then colony PQ): there
    the semantic model's small regions and thin rim bands are artefacts, while the smallest
    colony a person draws is several times larger (about 2000 px); with the former 64 / 8
    the demo predicted almost two colonies per drawn one (docs/evaluation.md has the figures).
    """

    min_threshold: float = DEFAULT_MIN_THRESHOLD
    unsure_threshold: float = DEFAULT_UNSURE_THRESHOLD
    min_area: int = DEFAULT_MIN_AREA
    box_margin: float = 0.1  # proposal boxes grow by this fraction per side for SAM
    prompts_per_batch: int | None = None  # SAM prompts decoded together (None: the runner's)
    min_thickness: float = DEFAULT_MIN_THICKNESS
    neck_ratio: float = DEFAULT_NECK_RATIO

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
        if self.min_thickness < 0:
            raise CoralsegError(
                f"the minimum colony thickness must be 0 or more pixels, got {self.min_thickness}",
                settings=["min_thickness"],
            )
        if not 0 <= self.neck_ratio < 1:
            raise CoralsegError(
                f"the neck ratio that splits touching colonies must be in [0, 1), got "
                f"{self.neck_ratio}",
                settings=["neck_ratio"],
            )

    def at_photo_scale(self, photo_pixels_per_model_pixel: float) -> RefineSettings:
        """These settings in pixels of a photo of which one model pixel spans
        ``photo_pixels_per_model_pixel`` pixels a side (see
        :func:`coral_core.inference.semantic.photo_pixels_per_model_pixel`): lengths scale
        by it, areas by its square."""
        if not photo_pixels_per_model_pixel > 0:
            raise ValueError(
                f"a photo's scale must be a positive number, got {photo_pixels_per_model_pixel}"
            )
        scale = float(photo_pixels_per_model_pixel)
        return replace(
            self,
            min_area=max(1, round(self.min_area * scale * scale)),
            min_thickness=self.min_thickness * scale,
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


def thickness(mask: np.ndarray) -> float:
    """Twice the largest distance (pixels, Euclidean) from a pixel of an ``(h, w)`` bool mask
    to the nearest pixel outside it: about the width of a band, the diameter of a disc."""
    padded = np.pad(np.asarray(mask, dtype=np.uint8), 1)
    if not padded.any():
        return 0.0
    return 2.0 * float(cv2.distanceTransform(padded, cv2.DIST_L2, 5).max())


def split_touching(mask: np.ndarray, neck_ratio: float, min_area: int) -> list[np.ndarray]:
    """Cut a region of one genus into its colonies at the necks of its distance transform.

    The region's distance to its border is flooded from its highest level down, one pixel
    at a time: each level's connected parts of ``distance >= level`` are lobes. Where two
    lobes meet at a level (the saddle of their neck), they stay one colony when that level
    is at least ``neck_ratio`` times the lower lobe's peak, and are two colonies otherwise;
    parts under ``min_area`` pixels stay with a neighbour. Each pixel then goes to the
    nearest *core* (a colony's region at the last level where it stood alone).

    Args:
        mask: ``(h, w)`` bool, one connected region.
        neck_ratio: two lobes stay one colony unless their neck is narrower than this
            fraction of the thinner lobe's thickness (0: never split).
        min_area: parts with fewer pixels are not cut off.

    Returns:
        ``(h, w)`` bool masks that partition ``mask`` (just ``[mask]`` when nothing is cut).
    """
    mask = np.asarray(mask, dtype=bool)
    if neck_ratio <= 0 or mask.sum() < 2 * min_area:
        return [mask]
    padded = np.pad(mask, 1).astype(np.uint8)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)
    cores: dict[int, np.ndarray] = {}  # colony -> its core (bool, padded frame)
    peaks: dict[int, float] = {}
    for level in np.arange(np.floor(distance.max()), 0, -1.0):
        count, parts = cv2.connectedComponents((distance >= level).view(np.uint8), connectivity=8)
        for part in range(1, count):
            region = parts == part
            inside = [c for c, core in cores.items() if (core & region).any()]
            if not inside:
                cores[len(peaks) + 1] = region
                peaks[len(peaks) + 1] = float(distance[region].max())
                continue
            highest = max(inside, key=lambda c: peaks[c])
            # a lobe whose neck to the highest is wide for its size, or too small, is part of it
            merged = [
                c
                for c in inside
                if c != highest
                and (level >= neck_ratio * peaks[c] or int(cores[c].sum()) < min_area)
            ]
            for c in merged:
                del cores[c]
            if len(inside) - len(merged) == 1:
                cores[highest] = region
    if len(cores) <= 1:
        return [mask]
    labels = np.zeros(padded.shape, dtype=np.int32)
    for number, core in enumerate(cores.values(), start=1):
        labels[core] = number
    _, nearest = cv2.distanceTransformWithLabels(
        (labels == 0).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    seeds = np.zeros(int(nearest.max()) + 1, dtype=np.int32)
    seeds[nearest[labels > 0]] = labels[labels > 0]
    owner = np.where(padded > 0, seeds[nearest], 0)[1:-1, 1:-1]
    pieces = [owner == number for number in range(1, len(cores) + 1)]
    if min(int(piece.sum()) for piece in pieces) < min_area:
        return [mask]
    return pieces


def split_proposals(found: list[Proposal], settings: RefineSettings) -> list[Proposal]:
    """Each proposal cut into its touching colonies (:func:`split_touching`)."""
    parts = []
    for proposal in found:
        pieces = split_touching(proposal.mask, settings.neck_ratio, settings.min_area)
        if len(pieces) == 1:
            parts.append(proposal)
            continue
        x0, y0 = proposal.box[:2]
        for piece in pieces:
            left, top, right, bottom = foreground_box(piece)
            box = (x0 + left, y0 + top, x0 + right, y0 + bottom)
            parts.append(Proposal(piece[top:bottom, left:right].copy(), box, proposal.value))
    return parts


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
        sam: a :class:`coral_core.inference.sam_models.SamRunner` whose image is set to this image,
            or None to keep the proposals as they are (semantic regions only).
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
    found = split_proposals(
        proposals(prediction.colony_labels, zones, encoding, settings.min_area), settings
    )
    slivers = [p for p in found if thickness(p.mask) < settings.min_thickness]
    kept = [p for p in found if thickness(p.mask) >= settings.min_thickness]
    candidates = _candidates(kept, zones, sam, settings, coral_head_decides)

    scored = []
    for proposal, mask, (x0, y0, x1, y1), sam_iou in candidates:
        value, mean = _best_class(
            prediction.colony_labels[y0:y1, x0:x1][mask],
            prediction.colony_probability[y0:y1, x0:x1][mask],
        )
        scored.append(_Colony(mean * sam_iou, value, proposal, mask, (x0, y0, x1, y1)))
    scored.sort(key=lambda colony: -colony.score)
    owner = _assign_pixels(scored, slivers, (height, width), settings)

    semantic = _unclaimed_semantic(prediction.labels, encoding)
    instances = []
    for number, colony in enumerate(scored, start=1):
        if colony.box is None:
            continue
        x0, y0, x1, y1 = colony.box
        mine = owner[y0:y1, x0:x1] == number
        semantic[y0:y1, x0:x1][mine] = colony.value
        left, top, right, bottom = foreground_box(mine)
        instances.append(
            CoralInstance(
                encoding.label_names[colony.value],
                colony.value,
                round(colony.score, 6),
                (x0 + left, y0 + top, right - left, bottom - top),
                mine[top:bottom, left:right].copy(),
                int(mine.sum()),
            )
        )
    return InstanceResult(tuple(instances), semantic, zones)


@dataclass(eq=False)
class _Colony:
    """A colony while pixels are assigned; ``box`` (ends exclusive) covers every pixel it
    may own, None once it is dropped."""

    score: float
    value: int
    proposal: Proposal
    mask: np.ndarray
    box: tuple[int, int, int, int] | None


def _assign_pixels(
    colonies: list[_Colony],
    slivers: list[Proposal],
    shape: tuple[int, int],
    settings: RefineSettings,
) -> np.ndarray:
    """``(H, W)`` int32: the number (1-based, in ``colonies``' order) of the colony owning each
    pixel, 0 for none, by the module's rules: own proposal first, then SAM's additions by
    decreasing score, then small colonies dropped and thin ones and slivers absorbed."""
    owner = np.zeros(shape, dtype=np.int32)
    for number, colony in enumerate(colonies, start=1):
        x0, y0, x1, y1 = colony.proposal.box
        owner[y0:y1, x0:x1][colony.proposal.mask] = number
    for number, colony in enumerate(colonies, start=1):
        x0, y0, x1, y1 = colony.box
        window = owner[y0:y1, x0:x1]
        window[colony.mask & (window == 0)] = number
    thin = []
    for number, colony in enumerate(colonies, start=1):
        x0, y0, x1, y1 = colony.box
        window = owner[y0:y1, x0:x1]
        mine = window == number
        if mine.sum() < settings.min_area:
            window[mine] = 0
            colony.box = None
        elif thickness(mine) < settings.min_thickness:
            thin.append((number, colony))
    pieces = [(p.mask, p.box) for p in slivers]
    for number, colony in thin:
        x0, y0, x1, y1 = colony.box
        window = owner[y0:y1, x0:x1]
        pieces.append((window == number, colony.box))
        window[window == number] = 0
        colony.box = None
    for mask, box in pieces:
        _absorb(mask, box, owner, colonies)
    return owner


def _absorb(
    mask: np.ndarray, box: tuple[int, int, int, int], owner: np.ndarray, colonies: list[_Colony]
) -> None:
    """Give a sliver's free pixels to the colony sharing the longest border with it."""
    height, width = owner.shape
    x0, y0, x1, y1 = box
    gx0, gy0, gx1, gy1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, width), min(y1 + 1, height)
    grown = np.zeros((gy1 - gy0, gx1 - gx0), dtype=bool)
    grown[y0 - gy0 : y1 - gy0, x0 - gx0 : x1 - gx0] = mask
    ring = cv2.dilate(grown.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) & ~grown
    neighbours = owner[gy0:gy1, gx0:gx1][ring]
    neighbours = neighbours[neighbours > 0]
    if neighbours.size == 0:
        return
    number = int(np.bincount(neighbours).argmax())
    window = owner[gy0:gy1, gx0:gx1]
    window[grown & (window == 0)] = number
    colony = colonies[number - 1]
    cx0, cy0, cx1, cy1 = colony.box
    colony.box = (min(cx0, x0), min(cy0, y0), max(cx1, x1), max(cy1, y1))


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
    """``(proposal, mask in box, box, sam_iou)`` per proposal: the proposal grown by SAM's
    mask.

    Where the coral head decides (see the module docstring), proposals whose CoralSCoP mask
    is "not coral" are dropped instead.
    """
    if sam is None or not found:
        return [(p, p.mask, p.box, 1.0) for p in found]
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
            grown = grow_proposal(
                found[index],
                zones,
                sam_mask,
                windows[index],
                predicted.iou_scores[offset],
                None if coral_head_decides else coral,
            )
            candidates.append((found[index], *grown))
    return candidates
