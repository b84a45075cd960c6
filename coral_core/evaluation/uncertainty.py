"""How unsure a segmentation model is about an image: scores for choosing what to annotate next.

Both scores are computed per pixel from the class probabilities and averaged over the image;
both lie in ``[0, 1]`` and grow with uncertainty, so sorting by them in descending order puts
the images the model knows least about first.

* ``entropy``: Shannon entropy of the pixel's class distribution divided by ``log(C)``
  (0: one class has all the probability; 1: all ``C`` classes equally likely).
* ``margin``: one minus the gap between the two most likely classes (0: the best class has
  probability 1; 1: a tie between the best two).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

UncertaintyMethod = Literal["entropy", "margin"]
METHODS: tuple[str, ...] = ("entropy", "margin")


def pixel_uncertainty(
    probabilities: torch.Tensor | np.ndarray, method: UncertaintyMethod = "entropy"
) -> torch.Tensor:
    """Per-pixel uncertainty in ``[0, 1]``.

    Args:
        probabilities: ``(C, H, W)`` float class probabilities (softmax over ``C >= 2``
            channels; each pixel sums to 1).
        method: ``"entropy"`` or ``"margin"`` (see the module docstring).

    Returns:
        ``(H, W)`` float32 tensor on the input's device.
    """
    probs = torch.as_tensor(probabilities).float()
    if probs.ndim != 3 or probs.shape[0] < 2:
        raise ValueError(
            f"expected (C, H, W) probabilities with C >= 2 classes, got {tuple(probs.shape)}"
        )
    if method == "entropy":
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=0)
        return (entropy / math.log(probs.shape[0])).clamp_(0.0, 1.0)
    if method == "margin":
        top2 = probs.topk(2, dim=0).values
        return (1.0 - (top2[0] - top2[1])).clamp_(0.0, 1.0)
    raise ValueError(f"unknown uncertainty method {method!r}; use one of {', '.join(METHODS)}")


def image_uncertainty(
    logits: torch.Tensor | np.ndarray, method: UncertaintyMethod = "entropy"
) -> float:
    """Mean per-pixel uncertainty of an image from its ``(C, H, W)`` logits."""
    probabilities = torch.softmax(torch.as_tensor(logits).float(), dim=0)
    return float(pixel_uncertainty(probabilities, method).mean())
