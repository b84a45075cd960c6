"""SAM's mask upscaling, computed for a window of the photo only.

SAM's mask decoder gives low-resolution logits (256 x 256 for the 1024 px encoder input).
``Sam.postprocess_masks`` turns them into logits at the photo's resolution in two bilinear
steps (``align_corners=False``): up to the encoder's square input, crop away the padding,
then to the photo's size. Both steps are linear and separable, so the logits of any window
of the photo are ``rows @ low_res @ cols.T``, with ``rows`` and ``cols`` the product of the
two steps' interpolation matrices restricted to the window's rows and columns. The cost is
that of the window (``window side x 256`` per axis), not of the photo: one colony's mask no
longer needs a photo-sized float array.

The interpolation weights are computed as torch computes them (in float32), so the values
equal ``postprocess_masks`` up to the rounding of its intermediate image (under 1e-3 on SAM's
logits, which reach tens): a mask thresholded at 0 can differ only where the logit is that
close to 0.
"""

from __future__ import annotations

import torch

Window = tuple[int, int, int, int]  # (x0, y0, x1, y1), ends exclusive


def resize_matrix(
    in_size: int,
    out_size: int,
    start: int = 0,
    stop: int | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The ``(stop - start, in_size)`` float32 matrix of a 1-D bilinear resize.

    Row ``k`` holds the weights that ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)`` gives output sample ``start + k`` of a resize from ``in_size`` to
    ``out_size`` samples: source position ``(i + 0.5) * in_size / out_size - 0.5``, clamped at
    0, between its two neighbours (the last sample repeats past the end).
    """
    stop = out_size if stop is None else stop
    if in_size < 1 or not 0 <= start <= stop <= out_size:
        raise ValueError(
            f"rows {start}..{stop} of a resize from {in_size} to {out_size} samples do not exist"
        )
    # In float32 as torch's kernel computes it, so that the weights are torch's to the bit.
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    outputs = torch.arange(start, stop, dtype=torch.float32, device=device)
    source = ((outputs + 0.5) * scale.to(device) - 0.5).clamp(min=0.0)
    first = source.floor().long().clamp(max=in_size - 1)
    second = (first + 1).clamp(max=in_size - 1)
    weight = source - first
    matrix = torch.zeros(stop - start, in_size, dtype=torch.float32, device=device)
    rows = torch.arange(stop - start, device=device)
    matrix.index_put_((rows, first), 1.0 - weight, accumulate=True)
    matrix.index_put_((rows, second), weight, accumulate=True)
    return matrix


def upscaled_window(
    low_res: torch.Tensor,
    encoder_size: int,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
    window: Window,
) -> torch.Tensor:
    """``Sam.postprocess_masks`` of ``low_res``, inside ``window`` of the photo only.

    Args:
        low_res: ``(..., h, w)`` float mask logits from SAM's decoder (256 x 256 for SAM).
        encoder_size: side of the encoder's square input (``image_encoder.img_size``, 1024).
        input_size: ``(H', W')`` of the resized photo inside that input, before padding.
        original_size: ``(H, W)`` of the photo.
        window: ``(x0, y0, x1, y1)`` in photo pixels, ends exclusive, inside the photo.

    Returns:
        ``(..., y1 - y0, x1 - x0)`` float logits; a pixel is in the mask where they are > 0
        (SAM's ``mask_threshold``).
    """
    x0, y0, x1, y1 = window
    height, width = original_size
    if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
        raise ValueError(f"window {window} is not inside a {width} x {height} photo")
    rows = _two_step_matrix(low_res.shape[-2], encoder_size, input_size[0], height, y0, y1)
    cols = _two_step_matrix(low_res.shape[-1], encoder_size, input_size[1], width, x0, x1)
    rows, cols = rows.to(low_res.device), cols.to(low_res.device)
    return rows @ low_res.float() @ cols.T


def _two_step_matrix(
    low: int, encoder: int, resized: int, original: int, start: int, stop: int
) -> torch.Tensor:
    """Rows ``start..stop`` of: ``low -> encoder`` samples, keep the first ``resized``, then
    ``resized -> original``."""
    to_original = resize_matrix(resized, original, start, stop)
    to_encoder = resize_matrix(low, encoder, 0, resized)
    used = to_original.any(dim=0).nonzero()
    if len(used) == 0:
        return torch.zeros(stop - start, low)
    first, last = int(used[0]), int(used[-1]) + 1
    return to_original[:, first:last] @ to_encoder[first:last]
