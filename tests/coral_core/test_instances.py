"""The instance stage's documented rules, on constructed probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.formats.rle import mask_to_coco_rle
from coral_core.inference.instances import (
    RefineSettings,
    grow_proposal,
    proposals,
    refine,
    zone_map,
)
from coral_core.inference.prediction import (
    SemanticPrediction,
    can_tell_not_coral,
    summarize_probabilities,
)
from coral_core.inference.sam_models import PromptMasks
from coral_core.labels.taxonomy import BUILTIN_TAXONOMIES, MaskEncoding, Taxonomy

ENCODING = MaskEncoding(Taxonomy("two", ("Acropora", "Porites")))  # 0 bg, 1 Acropora, 2 Porites
# These scenes' colonies are 80-200 pixels, 8-14 thick: smaller than the default smallest
# colony; the tests are about other rules, so they keep colonies of that size.
SMALL_COLONIES = RefineSettings(min_area=64, min_thickness=8)
H, W = 40, 60


def _probabilities(coral: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Background gets 1 - coral; class ``value`` gets ``coral`` (per pixel)."""
    probs = np.zeros((3, H, W), np.float32)
    probs[0] = 1 - coral
    for v in (1, 2):
        probs[v] = np.where(value == v, coral, 0)
    return probs


def _summary(coral: np.ndarray, value: np.ndarray) -> SemanticPrediction:
    return summarize_probabilities(_probabilities(coral, value), ENCODING)


class StandInSam:
    """A deterministic SAM: each box's mask is the box itself; records its batches.

    With ``coral_scores``, it behaves as CoralSCoP (a coral/non-coral head), the score of
    prompt ``i`` being ``coral_scores[i]``.
    """

    def __init__(self, coral_scores: list[float] | None = None) -> None:
        self.coral_scores = coral_scores
        self.batches: list[int] = []
        self.seen = 0

    @property
    def has_category_head(self) -> bool:
        return self.coral_scores is not None

    def predict_boxes(self, boxes: np.ndarray, crops=None) -> PromptMasks:
        self.batches.append(len(boxes))
        masks = []
        for (bx0, by0, bx1, by1), (x0, y0, x1, y1) in zip(boxes, crops, strict=True):
            mask = np.zeros((y1 - y0, x1 - x0), bool)
            mask[int(by0) - y0 : int(by1) - y0, int(bx0) - x0 : int(bx1) - x0] = True
            masks.append(mask)
        scores = None
        if self.coral_scores is not None:
            scores = np.array(self.coral_scores[self.seen : self.seen + len(boxes)], np.float32)
        self.seen += len(boxes)
        return PromptMasks(masks, np.full(len(boxes), 0.9, np.float32), scores)


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    """An Acropora colony (coral), an unsure halo around it, a small Porites colony."""
    coral = np.full((H, W), 0.01, np.float32)
    value = np.ones((H, W), np.int64)
    coral[5:25, 5:25] = 0.1  # unsure halo (between 0.05 and 0.2)
    coral[10:20, 10:20] = 0.9  # confident Acropora
    coral[30:38, 40:50] = 0.8  # confident Porites
    value[28:40, 38:52] = 2
    return coral, value


def test_coral_probability_is_the_summed_colony_probability() -> None:
    probs = np.zeros((3, 2, 2), np.float32)
    probs[0], probs[1], probs[2] = 0.5, 0.3, 0.2
    summary = summarize_probabilities(probs, ENCODING)
    np.testing.assert_allclose(summary.coral.astype(np.float32), 0.5, atol=1e-3)
    assert (summary.labels == 0).all() and (summary.colony_labels == 1).all()
    np.testing.assert_allclose(summary.colony_probability.astype(np.float32), 0.3, atol=1e-3)


def test_zones_follow_the_thresholds(scene) -> None:
    coral, _ = scene
    zones = zone_map(coral, RefineSettings(min_threshold=0.05, unsure_threshold=0.2))
    assert zones[0, 0] == 0 and zones[6, 6] == 1 and zones[15, 15] == 2
    assert zone_map(coral, RefineSettings(0.0, 0.0)).min() == 2  # everything coral
    assert zone_map(coral, RefineSettings(0.5, 0.95)).max() == 1  # nothing reaches 0.95


def test_without_sam_the_instances_are_the_confident_regions(scene) -> None:
    result = refine(_summary(*scene), ENCODING, sam=None, settings=SMALL_COLONIES)
    assert [(i.label, i.area) for i in result.instances] == [("Acropora", 100), ("Porites", 80)]
    first = result.instances[0]
    assert first.bbox == (10, 10, 10, 10) and first.mask.shape == (10, 10) and first.mask.all()
    assert first.score == pytest.approx(0.9, rel=1e-3)
    assert (result.semantic[10:20, 10:20] == 1).all() and (result.semantic[30:38, 40:50] == 2).all()
    assert (result.semantic[6, 6] == 0) and (result.semantic[0, 0] == 0)  # unsure, not coral


def test_coral_pixels_keep_their_genus_where_background_is_the_argmax() -> None:
    probs = np.zeros((3, H, W), np.float32)
    probs[0] = 1.0
    probs[:, 10:20, 10:20] = np.array([0.45, 0.3, 0.25])[:, None, None]  # coral 0.55 > 0.45
    result = refine(summarize_probabilities(probs, ENCODING), ENCODING, settings=SMALL_COLONIES)
    (colony,) = result.instances
    assert colony.label == "Acropora" and colony.area == 100
    assert (result.semantic[10:20, 10:20] == 1).all()


def test_cover_classes_make_no_colonies_but_keep_their_pixels() -> None:
    encoding = MaskEncoding(Taxonomy("reef", ("Acropora", "Sand"), cover_classes=("Sand",)))
    probs = np.zeros((3, H, W), np.float32)
    probs[2] = 1.0  # Sand everywhere
    probs[:, 10:20, 10:20] = np.array([0.0, 0.9, 0.1])[:, None, None]
    result = refine(summarize_probabilities(probs, encoding), encoding, settings=SMALL_COLONIES)
    assert [(i.label, i.area) for i in result.instances] == [("Acropora", 100)]
    assert (result.semantic == 2).sum() == H * W - 100  # cover stays in the refined mask


@pytest.mark.parametrize("background_is_ignore", [False, True])
@pytest.mark.parametrize("name", sorted(BUILTIN_TAXONOMIES))
def test_every_builtin_encoding(name: str, background_is_ignore: bool) -> None:
    """A confident colony on "not coral" gives one colony, where the encoding can say "not
    coral"; otherwise the model is refused without CoralSCoP and CoralSCoP's head decides."""
    encoding = MaskEncoding(BUILTIN_TAXONOMIES[name], background_is_ignore)
    colony_value = encoding.colony_values[0]
    probs = np.zeros((encoding.num_labels, H, W), np.float32)
    if can_tell_not_coral(encoding):
        cover = [v for v in range(encoding.num_labels) if v not in encoding.colony_values]
        probs[cover[0]] = 1.0
        probs[:, 10:20, 10:20] = 0
        probs[colony_value, 10:20, 10:20] = 1.0
        result = refine(summarize_probabilities(probs, encoding), encoding, settings=SMALL_COLONIES)
        (colony,) = result.instances
        assert colony.value == colony_value and colony.area == 100
        return
    probs[colony_value] = 1.0  # an agnostic model: every pixel is some genus
    summary = summarize_probabilities(probs, encoding)
    with pytest.raises(CoralsegError, match="cannot tell coral from not coral"):
        refine(summary, encoding)
    with pytest.raises(CoralsegError, match="CoralSCoP"):
        refine(summary, encoding, sam=StandInSam())
    (colony,) = refine(summary, encoding, sam=StandInSam([0.9])).instances
    assert colony.area == H * W
    assert refine(summary, encoding, sam=StandInSam([0.1])).instances == ()


def test_sam_decides_unsure_pixels_but_never_takes_non_coral(scene) -> None:
    coral, value = scene
    zones = zone_map(coral, RefineSettings())
    acropora = next(p for p in proposals(value, zones, ENCODING, 1) if p.value == 1)
    sam_box = (3, 3, 30, 30)
    sam_mask = np.zeros((27, 27), bool)
    sam_mask[0:19, 0:19] = True  # image rows/cols 3..21: part of the halo and non-coral
    mask, box, iou = grow_proposal(acropora, zones, sam_mask, sam_box, sam_iou=0.8)
    assert box == (5, 5, 22, 22)  # non-coral rows/columns 3-4 were refused
    full = np.zeros((H, W), bool)
    full[box[1] : box[3], box[0] : box[2]] = mask
    assert full[5:22, 5:22].all()  # the halo inside SAM's mask joined
    assert not full[22:25, 5:25].any()  # the halo outside SAM's mask did not
    assert iou == 0.8


def test_sam_mask_smaller_than_the_proposal_keeps_the_proposal(scene) -> None:
    coral, value = scene
    zones = zone_map(coral, RefineSettings())
    acropora = next(p for p in proposals(value, zones, ENCODING, 1) if p.value == 1)
    tiny = np.zeros((12, 12), bool)
    tiny[5:7, 5:7] = True
    mask, box, _ = grow_proposal(acropora, zones, tiny, (9, 9, 21, 21))
    assert box == (10, 10, 20, 20) and mask.all()


def test_coralscop_non_coral_masks_add_nothing(scene) -> None:
    coral, value = scene
    zones = zone_map(coral, RefineSettings())
    acropora = next(p for p in proposals(value, zones, ENCODING, 1) if p.value == 1)
    wide = np.ones((H, W), bool)
    mask, box, _ = grow_proposal(acropora, zones, wide, (0, 0, W, H), coral_score=0.2)
    assert box == (10, 10, 20, 20) and mask.sum() == 100
    mask, box, _ = grow_proposal(acropora, zones, wide, (0, 0, W, H), coral_score=0.9)
    assert mask.sum() == 20 * 20 + 8 * 10  # every unsure or coral pixel SAM covered


def test_refine_with_sam_batches_prompts_and_grows_colonies() -> None:
    coral = np.full((H, W), 0.01, np.float32)
    value = np.ones((H, W), np.int64)
    starts = [(2, 2), (2, 22), (2, 42), (24, 2), (24, 22)]
    for y, x in starts:
        coral[y : y + 14, x : x + 14] = 0.1  # unsure halo SAM's box mask reaches into
        coral[y + 2 : y + 12, x + 2 : x + 12] = 0.9
    sam = StandInSam([0.9, 0.9, 0.2, 0.9, 0.9])
    settings = RefineSettings(min_area=64, min_thickness=8, prompts_per_batch=2, box_margin=0.2)
    result = refine(_summary(coral, value), ENCODING, sam, settings)
    assert sam.batches == [2, 2, 1]
    assert len(result.instances) == 5
    by_area = sorted(result.instances, key=lambda i: i.area)
    # The colony whose CoralSCoP mask was "not coral" stayed as it was...
    assert by_area[0].area == 100 and by_area[0].score == pytest.approx(0.9 * 0.9, rel=1e-2)
    # ...the others took their unsure halo (the box grown by 20%), which lowers their mean.
    halo_mean = (100 * 0.9 + 96 * 0.1) / 196
    for colony in by_area[1:]:
        assert colony.area == 14 * 14 and colony.score == pytest.approx(0.9 * halo_mean, rel=1e-2)


def test_instances_are_box_local_and_encode_like_whole_masks(scene) -> None:
    result = refine(_summary(*scene), ENCODING, settings=SMALL_COLONIES)
    assert len(result.instances) == 2
    for instance in result.instances:
        full = instance.full_mask(H, W)
        assert full.sum() == instance.area
        assert instance.coco_rle(H, W) == mask_to_coco_rle(full)


def test_min_area_and_overlap_resolution(scene) -> None:
    result = refine(
        _summary(*scene), ENCODING, settings=RefineSettings(min_area=90, min_thickness=8)
    )
    assert [i.label for i in result.instances] == ["Acropora"]  # Porites has 80 pixels


def test_thresholds_are_validated() -> None:
    with pytest.raises(CoralsegError, match="min_threshold <= unsure_threshold"):
        RefineSettings(min_threshold=0.3, unsure_threshold=0.2)
    with pytest.raises(CoralsegError, match="min_area must be at least 1"):
        RefineSettings(min_area=0)
    with pytest.raises(ValueError, match=r"expected \(3, H, W\)"):
        summarize_probabilities(np.zeros((2, 4, 4), np.float32), ENCODING)
