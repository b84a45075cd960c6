"""What a colony is, on constructed maps: slivers, touching colonies, nested colonies,
annotated colonies as polygons."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from coral_core.ecology.colonies import annotated_colonies, colonies_from_labels
from coral_core.ecology.legend import ClassLegend
from coral_core.inference.instances import RefineSettings, refine, split_touching, thickness
from coral_core.inference.prediction import SemanticPrediction, summarize_probabilities
from coral_core.labels.rasterize import LabeledPolyline, polyline_regions, rasterize_polylines
from coral_core.labels.taxonomy import MaskEncoding, Taxonomy

ENCODING = MaskEncoding(Taxonomy("three", ("Acropora", "Porites", "Montipora")))
ACROPORA, PORITES, MONTIPORA = 1, 2, 3
H, W = 100, 160


def disc(shape: tuple[int, int], x: int, y: int, radius: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.circle(out, (x, y), radius, 1, -1)
    return out.astype(bool)


def summary(*regions: tuple[np.ndarray, int, float]) -> SemanticPrediction:
    """Background where no region is; each ``(mask, class value, probability)`` painted in
    order (later on top)."""
    probs = np.zeros((ENCODING.num_labels, H, W), np.float32)
    probs[0] = 1.0
    for mask, value, probability in regions:
        probs[:, mask] = 0.0
        probs[value, mask] = probability
        probs[0, mask] = 1 - probability
    return summarize_probabilities(probs, ENCODING)


def test_thickness_is_the_width_of_a_band_and_the_diameter_of_a_disc() -> None:
    band = np.zeros((20, 60), bool)
    band[5:9, 5:55] = True
    assert thickness(band) == pytest.approx(4, abs=0.5)
    assert thickness(disc((80, 80), 40, 40, 20)) == pytest.approx(40, abs=1.5)


def test_a_sliver_along_a_colony_is_absorbed_into_it() -> None:
    # A Montipora colony with a 3-pixel Porites band along its rim: 700+ pixels, 1 colony.
    montipora = disc((H, W), 60, 50, 25)
    rim = disc((H, W), 60, 50, 28) & ~montipora
    assert rim.sum() > 400  # far above min_area 64: the area rule alone keeps it as a colony
    settings = RefineSettings(min_area=64)
    result = refine(
        summary((montipora, MONTIPORA, 0.9), (rim, PORITES, 0.9)), ENCODING, settings=settings
    )
    (colony,) = result.instances
    assert colony.label == "Montipora"
    assert colony.area == int((montipora | rim).sum())
    assert not (result.semantic == PORITES).any()


def test_a_sliver_touching_no_colony_is_dropped() -> None:
    line = np.zeros((H, W), bool)
    line[40:43, 10:150] = True  # 420 pixels, 3 thick
    result = refine(summary((line, PORITES, 0.9)), ENCODING, settings=RefineSettings(min_area=64))
    assert result.instances == ()
    assert (result.semantic[line] == ENCODING.background_value).all()
    kept = refine(
        summary((line, PORITES, 0.9)),
        ENCODING,
        settings=RefineSettings(min_area=64, min_thickness=0),
    )
    assert len(kept.instances) == 1


def test_touching_colonies_of_one_genus_are_separated_at_their_neck() -> None:
    left, right = disc((H, W), 50, 50, 30), disc((H, W), 105, 50, 30)
    result = refine(summary((left | right, ACROPORA, 0.9)), ENCODING)
    assert len(result.instances) == 2
    areas = sorted(i.area for i in result.instances)
    assert sum(areas) == int((left | right).sum()) and areas[0] == areas[1]
    for instance in result.instances:  # each colony is one disc, cut at the neck
        mask = instance.full_mask(H, W)
        assert max((mask & left).sum(), (mask & right).sum()) > 0.95 * instance.area
    # neck_ratio 0 keeps them one region, as before
    settings = RefineSettings(neck_ratio=0)
    assert (
        len(refine(summary((left | right, ACROPORA, 0.9)), ENCODING, settings=settings).instances)
        == 1
    )


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("one disc", 1),
        ("ellipse", 1),
        ("lobed outline", 1),
        ("three in a row", 3),
        ("dumbbell", 2),
        ("disc and a small bump", 1),
    ],
)
def test_split_touching_cuts_only_at_necks(shape: str, expected: int) -> None:
    size = (120, 240)
    if shape == "one disc":
        mask = disc(size, 60, 60, 40)
    elif shape == "ellipse":
        mask = np.zeros(size, np.uint8)
        cv2.ellipse(mask, (120, 60), (100, 35), 20, 0, 360, 1, -1)
        mask = mask.astype(bool)
    elif shape == "lobed outline":  # the demo sample's way of drawing a colony
        angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        radius = 45 * (1 + 0.25 * np.cos(3 * angles) + 0.15 * np.cos(5 * angles + 1))
        ring = np.stack([120 + radius * np.cos(angles), 60 + radius * np.sin(angles)], axis=1)
        mask = np.zeros(size, np.uint8)
        cv2.fillPoly(mask, [np.round(ring).astype(np.int32)], 1)
        mask = mask.astype(bool)
    elif shape == "three in a row":
        mask = disc(size, 50, 60, 30) | disc(size, 105, 60, 30) | disc(size, 160, 60, 30)
    elif shape == "dumbbell":
        mask = disc(size, 50, 60, 30) | disc(size, 150, 60, 25)
        mask[55:65, 50:150] = True
    else:
        mask = disc(size, 100, 60, 40) | disc(size, 142, 60, 8)
    parts = split_touching(mask, 0.7, 64)
    assert len(parts) == expected
    assert (np.sum(parts, axis=0) == mask).all()  # a partition of the region


def test_annotated_colonies_are_the_polygons() -> None:
    def square(x0, y0, x1, y1):
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float) / [W, H]

    polylines = [
        LabeledPolyline("Acropora", (square(10, 10, 50, 50),)),  # 1600 px
        LabeledPolyline("Acropora", (square(50, 10, 80, 40),)),  # touches it: same genus
        LabeledPolyline("Acropora", (square(20, 20, 30, 30),)),  # nested, same genus
        LabeledPolyline("Porites", (square(0, 29, 60, 31),)),  # cuts the big one in two
    ]
    values = {"Acropora": ACROPORA, "Porites": PORITES}
    mask, _ = rasterize_polylines(polylines, H, W, values)
    regions, report = polyline_regions(polylines, H, W, values)
    colonies = annotated_colonies(regions)
    assert report.regions_drawn == 4 and len(colonies) == 4
    # one pixel, one colony: the colonies partition the annotated pixels, class by class
    owner = np.zeros((H, W), int)
    for colony in colonies:
        full = colony.full_mask(H, W)
        assert not (owner[full] > 0).any()
        owner[full] = colony.value
    assert (owner == np.where(mask == ENCODING.background_value, 0, mask)).all()
    areas = {(c.label, c.bbox[:2]): c.area for c in colonies}
    # the big square minus the nested square (on top, 100 px) and minus the band where the
    # nested square does not cover it (the band's 2 x 40 pixels over it, 10 of them nested)
    assert areas[("Acropora", (10, 10))] == 1600 - 100 - (80 - 10)
    # connected regions of the mask, today's count, see 2 Acropora + 1 Porites
    legend = ClassLegend.from_encoding(ENCODING)
    assert len(colonies_from_labels(mask, legend)) != len(colonies)


class BoxSam:
    """A deterministic stand-in for SAM: each box prompt's mask is its whole box."""

    has_category_head = False

    def predict_boxes(self, boxes: np.ndarray, crops=None):
        from coral_core.inference.sam_models import PromptMasks

        masks = []
        for (bx0, by0, bx1, by1), (x0, y0, x1, y1) in zip(boxes, crops, strict=True):
            mask = np.zeros((y1 - y0, x1 - x0), bool)
            mask[int(by0) - y0 : int(by1) - y0, int(bx0) - x0 : int(bx1) - x0] = True
            masks.append(mask)
        return PromptMasks(masks, np.full(len(boxes), 0.9, np.float32), None)


def test_a_colony_nested_in_another_keeps_its_pixels_whatever_sam_says() -> None:
    # An Acropora ring, an unsure gap, a Porites colony in the hole. SAM's mask for the
    # ring (its whole box) covers the hole; the ring's score is the higher.
    ring = disc((H, W), 60, 50, 40) & ~disc((H, W), 60, 50, 20)
    gap = disc((H, W), 60, 50, 20) & ~disc((H, W), 60, 50, 15)
    nested = disc((H, W), 60, 50, 15)
    scene = summary((ring, ACROPORA, 0.95), (gap, ACROPORA, 0.1), (nested, PORITES, 0.6))
    result = refine(scene, ENCODING, sam=BoxSam())
    by_label = {i.label: i for i in result.instances}
    assert set(by_label) == {"Acropora", "Porites"}
    porites = by_label["Porites"].full_mask(H, W)
    acropora = by_label["Acropora"].full_mask(H, W)
    assert (porites == nested).all()
    assert not (porites & acropora).any()  # one pixel, one colony
    assert (acropora == ring | gap).all()  # the ring took the unsure gap SAM gave it
    assert (result.semantic[nested] == PORITES).all()
