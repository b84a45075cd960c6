"""The point-label loss: only labelled pixels contribute, and each photo counts alike."""

from __future__ import annotations

import torch
from torch.nn import functional

from coral_core.models.point_loss import PointLabelLoss


def _sparse_labels() -> torch.Tensor:
    labels = torch.full((2, 12, 16), 255, dtype=torch.long)
    labels[0, 2, 3], labels[0, 8, 10], labels[0, 5, 5] = 1, 2, 0  # photo 0: three points
    labels[1, :, :8] = 3  # photo 1: densely labelled half
    labels[1, :, 8:] = 1
    return labels


def test_only_labelled_pixels_contribute_to_loss_and_gradient() -> None:
    torch.manual_seed(0)
    labels = _sparse_labels()
    logits = torch.randn(2, 4, 12, 16, requires_grad=True)
    loss = PointLabelLoss()(logits, labels, ignore_index=255)
    loss.backward()
    labelled = (labels != 255)[:, None].expand_as(logits)
    assert torch.all(logits.grad[~labelled] == 0)
    assert torch.all(logits.grad[labelled].abs().sum() > 0)
    # Whatever the logits at unlabelled pixels, the loss is the same.
    changed = logits.detach().clone()
    changed[~labelled] = torch.randn(int((~labelled).sum())) * 50
    again = PointLabelLoss()(changed, labels, ignore_index=255)
    torch.testing.assert_close(again, loss.detach())


def test_each_photo_weighs_alike_whatever_its_labelled_pixels() -> None:
    torch.manual_seed(1)
    labels = _sparse_labels()
    logits = torch.randn(2, 4, 12, 16)
    loss = PointLabelLoss(loss_weight=2.0)(logits, labels, ignore_index=255)
    per_photo = [
        functional.cross_entropy(logits[i : i + 1], labels[i : i + 1], ignore_index=255)
        for i in range(2)
    ]
    torch.testing.assert_close(loss, 2.0 * (per_photo[0] + per_photo[1]) / 2)
    # MMSeg's default divides by every pixel: three points would give a tiny loss.
    points_only = labels[:1]
    ours = PointLabelLoss()(logits[:1], points_only, ignore_index=255)
    default = functional.cross_entropy(
        logits[:1], points_only, ignore_index=255, reduction="sum"
    ) / (points_only.numel())
    torch.testing.assert_close(ours / default, torch.tensor(12 * 16 / 3.0))
    # A batch with no labelled pixel gives zero, still connected to the graph.
    empty = torch.full_like(labels, 255)
    zero_in = logits.clone().requires_grad_(True)
    zero = PointLabelLoss()(zero_in, empty, ignore_index=255)
    zero.backward()
    assert zero.item() == 0.0 and torch.all(zero_in.grad == 0)
