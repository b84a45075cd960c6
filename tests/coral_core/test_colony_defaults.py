"""The default colony rules count a constructed photo as a person would draw it, at any
photo resolution (issue 18: no colony under the size a person would draw)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from coral_core.inference.instances import RefineSettings, refine
from coral_core.inference.prediction import SemanticPrediction, summarize_probabilities
from coral_core.inference.scaling import InferenceResize
from coral_core.inference.semantic import SemanticModel, photo_pixels_per_model_pixel
from coral_core.labels.taxonomy import MaskEncoding, Taxonomy

ENCODING = MaskEncoding(Taxonomy("two", ("Acropora", "Porites")))  # 0 bg, 1 Acropora, 2 Porites
FORMER_DEFAULTS = RefineSettings(min_area=64, min_thickness=8)


def model_scale_map() -> np.ndarray:
    """``(120, 200)`` int class map at the model's scale: three colonies a person draws
    (discs of radius 18, about 1000 pixels), five 10x10 specks and an 8-pixel-thick band,
    the kind of small regions and slivers the semantic model leaves between colonies."""
    labels = np.zeros((120, 200), np.uint8)
    for x, y, value in ((30, 30, 1), (100, 40, 2), (160, 85, 1)):
        cv2.circle(labels, (x, y), 18, value, -1)
    for x in (10, 60, 130, 168, 190):
        labels[108:118, x - 5 : x + 5] = 2 if x < 100 else 1
    labels[70:78, 30:110] = 1  # 640 pixels, 8 thick
    return labels


def summary(labels: np.ndarray) -> SemanticPrediction:
    probs = np.zeros((ENCODING.num_labels, *labels.shape), np.float32)
    for value in range(ENCODING.num_labels):
        probs[value] = np.where(labels == value, 0.9, 0.05)
    return summarize_probabilities(probs, ENCODING)


def test_the_former_defaults_counted_specks_and_slivers_as_colonies() -> None:
    labels = model_scale_map()
    assert len(refine(summary(labels), ENCODING, settings=FORMER_DEFAULTS).instances) == 9
    colonies = refine(summary(labels), ENCODING).instances
    assert sorted(c.label for c in colonies) == ["Acropora", "Acropora", "Porites"]
    assert min(c.area for c in colonies) > 900


@pytest.mark.parametrize("photo_scale", [1, 3])
def test_the_defaults_count_the_same_colonies_at_every_photo_resolution(photo_scale) -> None:
    labels = model_scale_map()
    photo = np.kron(labels, np.ones((photo_scale, photo_scale), np.uint8))
    settings = RefineSettings().at_photo_scale(photo_scale)
    colonies = refine(summary(photo), ENCODING, settings=settings).instances
    assert len(colonies) == 3
    assert min(c.area for c in colonies) > 900 * photo_scale**2
    # A fixed count of photo pixels does not carry across: the specks are 900 px on this
    # photo, and the former defaults would keep them.
    assert len(refine(summary(photo), ENCODING, settings=FORMER_DEFAULTS).instances) == 9


def test_settings_at_a_photo_scale_scale_lengths_and_areas() -> None:
    settings = RefineSettings(min_area=500, min_thickness=10).at_photo_scale(2.5)
    assert (settings.min_area, settings.min_thickness) == (3125, 25)
    assert RefineSettings().at_photo_scale(1.0) == RefineSettings()
    with pytest.raises(ValueError, match="positive"):
        RefineSettings().at_photo_scale(0)


def test_a_photo_scale_is_its_long_side_over_the_models() -> None:
    def model(resize, long_side) -> SemanticModel:
        return SemanticModel(
            network=torch.nn.Identity(),
            encoding=ENCODING,
            device=torch.device("cpu"),
            window=224,
            stride=224,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            half=False,
            resize=resize,
            long_side=long_side,
        )

    to_460 = InferenceResize(scale=(460, 460), keep_ratio=True)
    assert photo_pixels_per_model_pixel(model(to_460, 1000), 3000, 4000) == pytest.approx(
        4000 / 460
    )
    assert photo_pixels_per_model_pixel(model(to_460, None), 336, 448) == pytest.approx(448 / 460)
    assert photo_pixels_per_model_pixel(model(None, 1000), 3000, 6000) == pytest.approx(6)
    assert photo_pixels_per_model_pixel(model(None, None), 3000, 6000) == 1
