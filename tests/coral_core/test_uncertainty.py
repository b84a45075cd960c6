"""Uncertainty scores on small known probability maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coral_core.evaluation.uncertainty import image_uncertainty, pixel_uncertainty


def _probs(*pixels: tuple[float, ...]) -> np.ndarray:
    """One row of pixels, each a distribution over the classes -> (C, 1, N)."""
    return np.array(pixels, dtype=np.float32).T[:, None, :]


def test_entropy_is_zero_when_certain_and_one_when_uniform() -> None:
    scores = pixel_uncertainty(_probs((1, 0, 0), (1 / 3, 1 / 3, 1 / 3)), "entropy")
    np.testing.assert_allclose(scores.numpy()[0], [0.0, 1.0], atol=1e-6)


def test_entropy_of_a_two_way_split_among_four_classes() -> None:
    (score,) = pixel_uncertainty(_probs((0.5, 0.5, 0, 0)), "entropy").numpy()[0]
    assert score == pytest.approx(math.log(2) / math.log(4), abs=1e-6)


def test_margin_is_one_minus_the_gap_of_the_best_two() -> None:
    scores = pixel_uncertainty(_probs((0.7, 0.2, 0.1), (0.45, 0.45, 0.1), (1, 0, 0)), "margin")
    np.testing.assert_allclose(scores.numpy()[0], [0.5, 1.0, 0.0], atol=1e-6)


def test_image_score_averages_pixels_and_ranks_confident_images_lower() -> None:
    confident = torch.zeros(3, 4, 4)
    confident[0] = 20.0
    unsure = torch.zeros(3, 4, 4)
    assert image_uncertainty(confident) < 0.01
    assert image_uncertainty(unsure) == pytest.approx(1.0, abs=1e-6)
    assert image_uncertainty(unsure, "margin") == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("array", "method", "message"),
    [(np.ones((1, 2, 2)), "entropy", "C >= 2"), (np.ones((2, 2)), "entropy", "C, H, W"),
     (np.full((2, 1, 1), 0.5), "variance", "unknown uncertainty method")],
)  # fmt: skip
def test_bad_input_is_a_value_error(array: np.ndarray, method: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pixel_uncertainty(array, method)  # type: ignore[arg-type]
