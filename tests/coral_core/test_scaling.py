"""The test-time resize: MMCV's sizes, and band-wise upsampling equal to torch's."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config

from coral_core.errors import CoralsegError
from coral_core.inference.scaling import (
    InferenceResize,
    inference_resize_from_config,
    upsample_bands,
)


def test_output_sizes_follow_mmcv_rescale() -> None:
    keep = InferenceResize(scale=(2048, 512), keep_ratio=True)
    assert keep.output_size(1000, 1500) == (512, 768)  # short side bounded by 512
    assert InferenceResize(scale=(460, 460)).output_size(920, 1380) == (307, 460)
    assert InferenceResize(scale=(300, 200), keep_ratio=False).output_size(10, 10) == (200, 300)
    assert InferenceResize(scale_factor=0.5).output_size(101, 60) == (51, 30)
    assert InferenceResize.from_dict(keep.to_dict()) == keep
    with pytest.raises(CoralsegError, match="exactly one of scale and scale_factor"):
        InferenceResize()


def test_resize_read_from_the_test_pipeline() -> None:
    cfg = Config({"test_pipeline": [{"type": "LoadImageFromFile"}]})
    assert inference_resize_from_config(cfg) is None
    cfg.test_pipeline.append({"type": "Resize", "scale": (460, 460), "keep_ratio": True})
    assert inference_resize_from_config(cfg) == InferenceResize(scale=(460, 460))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(("small", "large"), [((7, 9), (30, 41)), ((5, 5), (5, 12))])
def test_bands_equal_torch_bilinear(align_corners, small, large) -> None:
    logits = torch.randn(3, *small)
    expected = torch.nn.functional.interpolate(
        logits[None], size=large, mode="bilinear", align_corners=align_corners
    )[0]
    bands = list(upsample_bands(logits, *large, align_corners=align_corners, band=8))
    assert [top for top, _ in bands] == list(range(0, large[0], 8))
    got = torch.cat([band for _, band in bands], dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
