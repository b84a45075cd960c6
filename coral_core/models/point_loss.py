"""``PointLabelLoss``: cross-entropy over labelled pixels only, each photo weighted alike.

Masks made from point labels are 255 (ignore) nearly everywhere. MMSeg's default
``CrossEntropyLoss`` divides by every pixel of the batch, ignored ones included, so ten
points per photo give a loss (and gradients) thousands of times too small to train; with
``avg_non_ignore`` it divides by the labelled pixels of the whole batch, so in mixed
training a densely labelled photo outweighs a photo with 25 points by the ratio of their
labelled pixels. This loss averages within each photo over its labelled pixels, then over
the photos that have any, so a photo with a few points counts as much as a dense one.
Unlabelled pixels contribute nothing, neither to the loss nor to its gradient.

Use it in a config (see ``configs/_base_/losses/point_labels.py``)::

    model = dict(decode_head=dict(loss_decode=dict(type="PointLabelLoss")))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmseg.registry import MODELS
from torch import nn
from torch.nn import functional

from coral_core.labels.taxonomy import IGNORE_INDEX


@MODELS.register_module()
class PointLabelLoss(nn.Module):
    """Per-photo mean cross-entropy over labelled pixels.

    Args:
        loss_weight: factor on the loss.
        class_weight: optional weight per class (``coralseg train --class-weights``).
        loss_name: the key in MMSeg's loss dict (must start with ``loss_``).
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        class_weight: Sequence[float] | None = None,
        loss_name: str = "loss_point_ce",
    ) -> None:
        super().__init__()
        if not loss_name.startswith("loss_"):
            raise ValueError(f"loss_name must start with 'loss_' (MMSeg's rule), got {loss_name}")
        self.loss_weight = loss_weight
        self.class_weight = None if class_weight is None else list(class_weight)
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        return self._loss_name

    def forward(
        self,
        cls_score: torch.Tensor,
        label: torch.Tensor,
        weight: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
        **kwargs,
    ) -> torch.Tensor:
        """The loss of a batch.

        Args:
            cls_score: ``(B, C, H, W)`` float logits.
            label: ``(B, H, W)`` int64 classes, ``ignore_index`` where unlabelled.
            weight: optional ``(B, H, W)`` per-pixel weights (MMSeg's ``seg_weight``).
            ignore_index: the unlabelled value.
        """
        class_weight = None
        if self.class_weight is not None:
            class_weight = cls_score.new_tensor(self.class_weight)
        per_pixel = functional.cross_entropy(
            cls_score, label, weight=class_weight, ignore_index=ignore_index, reduction="none"
        )
        labelled = (label != ignore_index).to(per_pixel.dtype)
        if weight is not None:
            per_pixel = per_pixel * weight
        counts = labelled.flatten(1).sum(dim=1)
        per_image = per_pixel.flatten(1).sum(dim=1) / counts.clamp(min=1)
        has_labels = counts > 0
        if not bool(has_labels.any()):
            # Keeps the graph connected (distributed training needs every parameter used).
            return cls_score.sum() * 0.0
        return self.loss_weight * per_image[has_labels].mean()
