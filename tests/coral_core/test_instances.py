"""The instance stage's documented threshold semantics, on constructed probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from coral_core.inference.instances import (
    RefineSettings,
    coral_probability,
    grow_proposal,
    proposals,
    refine,
    zone_map,
)
from coral_core.rle import coco_rle_to_mask
from coral_core.taxonomy import MaskEncoding, Taxonomy

ENCODING = MaskEncoding(Taxonomy("two", ("Acropora", "Porites")))  # 0 bg, 1 Acropora, 2 Porites
H, W = 40, 60


def _probabilities(coral: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Background gets 1 - coral; class ``value`` gets ``coral`` (per pixel)."""
    probs = np.zeros((3, H, W), np.float32)
    probs[0] = 1 - coral
    for v in (1, 2):
        probs[v] = np.where(value == v, coral, 0)
    return probs


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


def test_coral_probability_excludes_background() -> None:
    probs = np.zeros((3, 2, 2), np.float32)
    probs[0] = 0.7
    probs[1] = 0.2
    probs[2] = 0.1
    np.testing.assert_allclose(coral_probability(probs, ENCODING), 0.2)


def test_zones_follow_the_thresholds(scene) -> None:
    coral, _ = scene
    zones = zone_map(coral, RefineSettings(min_threshold=0.05, unsure_threshold=0.2))
    assert zones[0, 0] == 0 and zones[6, 6] == 1 and zones[15, 15] == 2
    assert zone_map(coral, RefineSettings(0.0, 0.0)).min() == 2  # everything coral
    assert zone_map(coral, RefineSettings(0.5, 0.95)).max() == 1  # nothing reaches 0.95


def test_without_sam_the_instances_are_the_confident_regions(scene) -> None:
    coral, value = scene
    result = refine(_probabilities(coral, value), ENCODING, sam=None)
    assert [(i.label, i.area) for i in result.instances] == [("Acropora", 100), ("Porites", 80)]
    first = coco_rle_to_mask(result.instances[0].rle)
    assert first[10:20, 10:20].all() and first.sum() == 100
    assert result.instances[0].bbox == (10, 10, 10, 10)
    assert result.instances[0].score == pytest.approx(0.9, rel=1e-5)
    assert (result.semantic[10:20, 10:20] == 1).all() and (result.semantic[30:38, 40:50] == 2).all()
    assert (result.semantic[6, 6] == 0) and (result.semantic[0, 0] == 0)  # unsure, not coral


def test_sam_decides_unsure_pixels_but_never_takes_non_coral(scene) -> None:
    coral, value = scene
    settings = RefineSettings()
    zones = zone_map(coral, settings)
    acropora = next(p for p in proposals(value, zones, ENCODING, 1) if p.value == 1)
    sam_mask = np.zeros((H, W), bool)
    sam_mask[3:22, 3:22] = True  # covers part of the unsure halo and some non-coral pixels
    mask, box, iou = grow_proposal(acropora, zones, sam_mask, sam_iou=0.8)
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
    tiny = np.zeros((H, W), bool)
    tiny[14:16, 14:16] = True
    mask, box, _ = grow_proposal(acropora, zones, tiny)
    assert box == (10, 10, 20, 20) and mask.all()


def test_coralscop_non_coral_masks_add_nothing(scene) -> None:
    coral, value = scene
    zones = zone_map(coral, RefineSettings())
    acropora = next(p for p in proposals(value, zones, ENCODING, 1) if p.value == 1)
    wide = np.ones((H, W), bool)
    mask, box, _ = grow_proposal(acropora, zones, wide, coral_score=0.2)
    assert box == (10, 10, 20, 20) and mask.sum() == 100
    mask, box, _ = grow_proposal(acropora, zones, wide, coral_score=0.9)
    assert mask.sum() == 20 * 20 + 8 * 10  # every unsure or coral pixel SAM covered


def test_min_area_and_overlap_resolution(scene) -> None:
    coral, value = scene
    result = refine(_probabilities(coral, value), ENCODING, settings=RefineSettings(min_area=90))
    assert [i.label for i in result.instances] == ["Acropora"]  # Porites has 80 pixels


def test_thresholds_are_validated() -> None:
    with pytest.raises(CoralsegError, match="--min-threshold <= --unsure-threshold"):
        RefineSettings(min_threshold=0.3, unsure_threshold=0.2)
    with pytest.raises(CoralsegError, match="--min-area"):
        RefineSettings(min_area=0)
    with pytest.raises(ValueError, match=r"expected \(3, H, W\)"):
        refine(np.zeros((2, 4, 4), np.float32), ENCODING)
