"""SAM's mask upscaling inside a window equals ``Sam.postprocess_masks`` cut to that window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.functional import interpolate

from coral_core.inference.sam_upscaling import resize_matrix, upscaled_window


def postprocess_masks(low_res, encoder, input_size, original_size):
    """segment-anything's ``Sam.postprocess_masks``, restated for a model-free test."""
    masks = interpolate(low_res, (encoder, encoder), mode="bilinear", align_corners=False)
    masks = masks[..., : input_size[0], : input_size[1]]
    return interpolate(masks, original_size, mode="bilinear", align_corners=False)


@pytest.mark.parametrize(
    ("in_size", "out_size"), [(256, 1024), (7, 3), (5, 5), (1, 4), (600, 1920)]
)
def test_resize_matrix_is_torchs_bilinear_resize(in_size: int, out_size: int) -> None:
    signal = torch.randn(1, 1, 1, in_size, generator=torch.Generator().manual_seed(in_size))
    expected = interpolate(signal, (1, out_size), mode="bilinear", align_corners=False)[0, 0, 0]
    torch.testing.assert_close(resize_matrix(in_size, out_size) @ signal[0, 0, 0], expected)
    part = resize_matrix(in_size, out_size, out_size // 3, out_size - 1) @ signal[0, 0, 0]
    torch.testing.assert_close(part, expected[out_size // 3 : out_size - 1])


# (original H, W) -> SAM's input size after resizing the long side to 1024.
PHOTOS = {(1920, 1920): (1024, 1024), (1500, 2000): (768, 1024), (333, 97): (1024, 298)}


@pytest.mark.parametrize("original", list(PHOTOS))
def test_windows_equal_the_full_upscale_cut_to_them(original: tuple[int, int]) -> None:
    input_size = PHOTOS[original]
    height, width = original
    low_res = 8 * torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(height))
    full = postprocess_masks(low_res[:, None], 1024, input_size, original)[:, 0]
    windows = [
        (0, 0, width, height),
        (0, 0, 1, 1),
        (width - 37, height - 11, width, height),
        (width // 3, height // 4, width // 3 + 50, height // 4 + 90),
        (5, 5, 5, 9),  # empty
    ]
    for x0, y0, x1, y1 in windows:
        window = upscaled_window(low_res, 1024, input_size, original, (x0, y0, x1, y1))
        expected = full[:, y0:y1, x0:x1]
        assert window.shape == expected.shape
        torch.testing.assert_close(window, expected, atol=1e-3, rtol=1e-4)
        far_from_zero = expected.abs() > 1e-3
        assert torch.equal((window > 0)[far_from_zero], (expected > 0)[far_from_zero])


def test_windows_outside_the_photo_are_refused() -> None:
    low_res = torch.zeros(256, 256)
    with pytest.raises(ValueError, match="not inside a 100 x 50 photo"):
        upscaled_window(low_res, 1024, (512, 1024), (50, 100), (90, 0, 101, 10))
    with pytest.raises(ValueError, match="do not exist"):
        resize_matrix(4, 8, 5, 9)


def test_memory_follows_the_window_not_the_photo() -> None:
    """A 40 x 40 window of a 20,000 px photo: no photo-sized array (3.2 GB in float32)."""
    low_res = torch.randn(256, 256)
    window = upscaled_window(
        low_res, 1024, (1024, 1024), (20_000, 20_000), (9000, 9000, 9040, 9040)
    )
    assert window.shape == (40, 40)
    assert np.isfinite(window.numpy()).all()
