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


def test_points_config_trains_a_mixed_batch_through_the_real_model() -> None:
    """The points config's model: one densely labelled photo and one with three points in a
    batch, through MMSeg's own loss path (decode head, logits resized to the labels)."""
    from pathlib import Path

    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from coral_core.models import build_segmentor

    config = (
        Path(__file__).resolve().parents[2]
        / "configs"
        / ("dinov2-vits14-segformer_tiny-cpu_eilat-points-224x224.py")
    )
    cfg = Config.fromfile(str(config))
    assert cfg.model.decode_head.loss_decode == {"type": "PointLabelLoss", "loss_weight": 1.0}
    model = build_segmentor(cfg.model).train()
    torch.manual_seed(0)
    inputs = torch.randn(2, 3, 56, 56)
    labels = torch.full((2, 56, 56), 255, dtype=torch.long)
    labels[0, :, :28], labels[0, :, 28:] = 1, 3
    labels[1, 10, 10], labels[1, 40, 20], labels[1, 30, 50] = 2, 2, 5
    samples = []
    for label in labels:
        sample = SegDataSample(metainfo={"img_shape": (56, 56), "pad_shape": (56, 56)})
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    losses = model.loss(inputs, samples)
    loss = losses["decode.loss_point_ce"]
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    head = model.decode_head.conv_seg.weight
    assert head.grad is not None and head.grad.abs().sum() > 0
    # Unlabel the three points: the photo drops out and the loss is the dense photo's alone.
    labels_dense_only = [s.gt_sem_seg.data.clone() for s in samples]
    labels_dense_only[1][:] = 255
    for sample, label in zip(samples, labels_dense_only, strict=True):
        sample.gt_sem_seg = PixelData(data=label)
    with torch.no_grad():
        model.eval()
        dense_alone = model.loss(inputs[:1], samples[:1])["decode.loss_point_ce"]
        both = model.loss(inputs, samples)["decode.loss_point_ce"]
    torch.testing.assert_close(both, dense_alone)
