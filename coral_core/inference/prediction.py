"""What the semantic stage hands to the instance stage: a compact per-pixel summary.

Full class probabilities cost ``4 * C`` bytes a pixel (14 GB for 17 labels at 8192 px); the
instance stage needs only four maps, 6 bytes a pixel, computed band by band from the logits:

* ``labels``: the argmax over all labels (the raw semantic mask);
* ``coral``: the *coral probability*, the summed probability of the colony classes
  (:attr:`coral_core.labels.taxonomy.MaskEncoding.colony_values`), i.e. one minus the probability
  of background and cover-only classes;
* ``colony_labels`` / ``colony_probability``: the most likely colony class and its
  probability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from coral_core.labels.taxonomy import IGNORE_INDEX, MaskEncoding

if TYPE_CHECKING:  # torch is imported where it is used: the CLI reads this module's users
    import torch


@dataclass(frozen=True)
class SemanticPrediction:
    """The semantic stage's output for one image (or one band of rows of it).

    Attributes:
        labels: ``(H, W)`` uint8 argmax over the model's labels (encoding values).
        coral: ``(H, W)`` float16 in [0, 1], the summed probability of the colony classes.
        colony_labels: ``(H, W)`` uint8, the encoding value of the most likely colony class
            (255 where the taxonomy has no colony class).
        colony_probability: ``(H, W)`` float16 in [0, 1], that class's probability.
    """

    labels: np.ndarray
    coral: np.ndarray
    colony_labels: np.ndarray
    colony_probability: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    @classmethod
    def concatenate(cls, bands: list[SemanticPrediction]) -> SemanticPrediction:
        """Stack bands of consecutive rows into one prediction."""
        return cls(
            *(
                np.concatenate([getattr(b, name) for b in bands], axis=0)
                for name in ("labels", "coral", "colony_labels", "colony_probability")
            )
        )


def can_tell_not_coral(encoding: MaskEncoding) -> bool:
    """Whether a model of this encoding has an output meaning "not coral".

    True when it has a background channel or cover-only classes. Models trained with
    background as ignore on colony classes only (the seed's 16-genus setup) put every pixel
    in some colony class, so their coral probability is 1 everywhere.
    """
    return not encoding.background_is_ignore or bool(encoding.taxonomy.cover_classes)


def summarize_probabilities(
    probabilities: torch.Tensor | np.ndarray, encoding: MaskEncoding
) -> SemanticPrediction:
    """The compact summary of class probabilities.

    Args:
        probabilities: ``(C, H, W)`` float softmax, channel = encoding value,
            ``C = encoding.num_labels``.
        encoding: the model's mask encoding.
    """
    import torch

    probs = torch.as_tensor(probabilities)
    if probs.ndim != 3 or probs.shape[0] != encoding.num_labels:
        raise ValueError(
            f"expected ({encoding.num_labels}, H, W) probabilities, got {tuple(probs.shape)}"
        )
    labels = probs.argmax(dim=0).to(torch.uint8)
    colony_values = list(encoding.colony_values)
    if colony_values:
        colony = probs[colony_values]
        coral = colony.sum(dim=0).clamp_(0, 1)
        best_probability, best = colony.max(dim=0)
        lookup = torch.tensor(colony_values, dtype=torch.uint8, device=probs.device)
        colony_labels = lookup[best]
    else:
        coral = torch.zeros(probs.shape[1:], device=probs.device)
        best_probability = coral
        colony_labels = torch.full(probs.shape[1:], IGNORE_INDEX, dtype=torch.uint8)
    return SemanticPrediction(
        labels=labels.cpu().numpy(),
        coral=coral.to(torch.float16).cpu().numpy(),
        colony_labels=colony_labels.cpu().numpy(),
        colony_probability=best_probability.to(torch.float16).cpu().numpy(),
    )
