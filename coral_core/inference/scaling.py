"""The scale a model sees images at, the same in ``coralseg test``, ``infer`` and the adapters.

Two resizes may come between a photo and the model, applied in this order:

* ``coralseg prepare --size S`` shrank the training photos so their long side is ``S``
  (Lanczos); training records ``S`` in the checkpoint (``meta["coralseg"]["long_side"]``)
  and inference shrinks photos the same way, so the model sees colonies at the size it
  learnt them;
* a config's test pipeline may resize images (``dict(type="Resize", scale=(460, 460),
keep_ratio=True)``): MMSeg then predicts at that size and resizes the logits back to the
original size (bilinear) before the argmax. Training records that resize in the checkpoint
(``meta["coralseg"]["inference_resize"]``) and inference applies it the same way, so one image
gives the same argmax through ``coralseg test`` and ``coralseg infer``. A test pipeline
without ``Resize`` means the native resolution.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from coral_core.errors import CoralsegError
from coral_core.training.mmseg_export import long_side_size


@dataclass(frozen=True)
class InferenceResize:
    """MMCV's ``Resize`` of a test pipeline.

    Attributes:
        scale: ``(width, height)`` target as MMCV writes it, or None.
        scale_factor: a factor instead of ``scale``, or None.
        keep_ratio: keep the aspect ratio (then ``scale`` bounds the long and short sides).
    """

    scale: tuple[int, int] | None = None
    scale_factor: float | None = None
    keep_ratio: bool = True

    def __post_init__(self) -> None:
        if (self.scale is None) == (self.scale_factor is None):
            raise CoralsegError("a test Resize needs exactly one of scale and scale_factor")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` an ``height x width`` image is resized to, as MMCV computes it."""
        if self.scale is None:
            scale = (int(width * self.scale_factor + 0.5), int(height * self.scale_factor + 0.5))
        else:
            scale = self.scale
        if not self.keep_ratio:
            return int(scale[1]), int(scale[0])
        factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
        return int(height * float(factor) + 0.5), int(width * float(factor) + 0.5)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": list(self.scale) if self.scale is not None else None,
            "scale_factor": self.scale_factor,
            "keep_ratio": self.keep_ratio,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InferenceResize:
        scale = data.get("scale")
        return cls(
            scale=tuple(int(v) for v in scale) if scale is not None else None,
            scale_factor=data.get("scale_factor"),
            keep_ratio=bool(data.get("keep_ratio", True)),
        )


def inference_resize_from_config(cfg: Any) -> InferenceResize | None:
    """The ``Resize`` step of a config's test pipeline, or None for native resolution."""
    pipeline = cfg.get("test_pipeline")
    if pipeline is None:
        loader = cfg.get("test_dataloader") or {}
        pipeline = (loader.get("dataset") or {}).get("pipeline") or []
    for step in pipeline:
        if step.get("type") != "Resize":
            continue
        scale = step.get("scale")
        if isinstance(scale, int):
            scale = (scale, scale)
        factor = step.get("scale_factor")
        if isinstance(factor, tuple | list):
            if factor[0] != factor[1]:
                raise CoralsegError("a test Resize with different x and y factors is not supported")
            factor = factor[0]
        return InferenceResize(
            scale=tuple(int(v) for v in scale) if scale is not None else None,
            scale_factor=float(factor) if scale is None else None,
            keep_ratio=bool(step.get("keep_ratio", False)),
        )
    return None


def resize_like_prepare(image: np.ndarray, long_side: int | None) -> np.ndarray:
    """``(H, W, 3)`` uint8 resized as ``coralseg prepare --size`` resizes photos (Lanczos)."""
    height, width = long_side_size(*image.shape[:2], long_side)
    if (height, width) == image.shape[:2]:
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(resized)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 resized to ``(height, width, 3)`` as MMCV does (cv2, bilinear)."""
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def upsample_bands(
    logits: torch.Tensor, height: int, width: int, align_corners: bool, band: int = 256
) -> Iterator[tuple[int, torch.Tensor]]:
    """Bilinear upsampling of ``(C, h, w)`` logits to ``(C, height, width)``, band by band.

    The same interpolation as ``torch.nn.functional.interpolate(mode="bilinear")``, which
    MMSeg applies to the whole image, computed separably (columns, then rows) so that only
    ``band`` output rows exist at a time.

    Yields:
        ``(first_row, (C, rows, width) float32)`` in row order.
    """
    columns = torch.nn.functional.interpolate(
        logits[None].float(),
        size=(logits.shape[1], width),
        mode="bilinear",
        align_corners=align_corners,
    )[0]
    low, high, weight = _source_rows(logits.shape[1], height, align_corners, logits.device)
    for start in range(0, height, band):
        stop = min(start + band, height)
        w = weight[start:stop].view(1, -1, 1)
        yield start, columns[:, low[start:stop]] * (1 - w) + columns[:, high[start:stop]] * w


def _source_rows(
    size_in: int, size_out: int, align_corners: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch's linear source indices and weights of each output row."""
    out = torch.arange(size_out, dtype=torch.float32, device=device)
    if align_corners:
        scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        source = out * scale
    else:
        source = ((out + 0.5) * (size_in / size_out) - 0.5).clamp_(min=0)
    low = source.floor().long().clamp_(max=size_in - 1)
    high = (low + 1).clamp_(max=size_in - 1)
    return low, high, source - low
