"""Semantic stage: a trained checkpoint's class probabilities over images of any size.

Sliding-window inference as MMSeg's ``slide`` mode computes it (logits of overlapping windows
averaged, then softmax), at the scale the model was trained for
(:mod:`coral_core.inference.scaling`), with the windows of a row batched, half precision on
GPUs, and the model loaded once from a config and a checkpoint whose metadata names its
classes. Logits exist one band of rows at a time; what the instance stage needs is kept in a
compact summary (:mod:`coral_core.inference.prediction`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from torch.nn import functional

from coral_core.checkpoint import load_checkpoint_file, load_weights_strictly
from coral_core.config_files import read_config
from coral_core.errors import CoralsegError
from coral_core.inference.cpu_math import flush_subnormals
from coral_core.inference.prediction import SemanticPrediction, summarize_probabilities
from coral_core.inference.scaling import (
    InferenceResize,
    inference_resize_from_config,
    resize_image,
    resize_like_prepare,
    upsample_bands,
)
from coral_core.labels.taxonomy import MaskEncoding, Taxonomy
from coral_core.training.mmseg_export import long_side_size

CPU_BATCH_PIXELS = 8 * 224 * 224  # window pixels per forward pass on a CPU
GPU_BATCH_SIZE = 8  # windows per forward pass on a GPU


@dataclass(frozen=True)
class SemanticModel:
    """A loaded segmentation model and what it needs to run.

    Attributes:
        network: MMSeg ``EncoderDecoder`` in eval mode, on ``device``.
        encoding: the mask encoding its outputs follow (pixel value = output channel).
        window: side of the sliding window in pixels; ``stride`` between windows.
        mean, std: per-channel RGB normalisation of the training data.
        half: run the network in float16 (CUDA only).
        resize: the test-time resize the model was trained for (None: native resolution;
            see :mod:`coral_core.inference.scaling`).
        long_side: ``coralseg prepare --size`` of its training photos (None: kept), applied
            to photos before ``resize``.
    """

    network: torch.nn.Module
    encoding: MaskEncoding
    device: torch.device
    window: int
    stride: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    half: bool
    resize: InferenceResize | None = None
    long_side: int | None = None

    @property
    def num_labels(self) -> int:
        return self.encoding.num_labels

    @property
    def default_batch_size(self) -> int:
        """Windows per forward pass: 8 on a GPU; on a CPU as many as hold the pixels of 8
        of the tiny model's 224 px windows (one 518 px ViT-B window), since larger batches
        of large windows are slower per window there (``bench/profile_infer.py``)."""
        if self.device.type != "cpu":
            return GPU_BATCH_SIZE
        return max(1, CPU_BATCH_PIXELS // (self.window * self.window))


def encoding_from_checkpoint(checkpoint: dict, cfg: Config) -> MaskEncoding:
    """The mask encoding stored by coralseg, else rebuilt from MMSeg's ``dataset_meta``."""
    meta = checkpoint.get("meta", {})
    stored = meta.get("coralseg", {}).get("encoding")
    if stored:
        return MaskEncoding.from_dict(stored)
    classes = meta.get("dataset_meta", {}).get("classes") or cfg.get("metainfo", {}).get("classes")
    if not classes:
        raise CoralsegError(
            "the checkpoint names no classes (no coralseg or dataset metadata); "
            "was it trained with MMSegmentation?"
        )
    palette = meta.get("dataset_meta", {}).get("palette") or ()
    names = tuple(classes)
    background_is_ignore = names[0].casefold() != "background"
    taxonomy_classes = names if background_is_ignore else names[1:]
    colors = (
        tuple(tuple(c) for c in palette[len(names) - len(taxonomy_classes) :]) if palette else ()
    )
    taxonomy = Taxonomy("checkpoint", taxonomy_classes, colors)
    return MaskEncoding(taxonomy, background_is_ignore)


def load_semantic_model(
    config: str | Path,
    checkpoint: str | Path,
    device: str = "cpu",
    half: bool | None = None,
) -> SemanticModel:
    """Build the network of an MMSeg config and load a checkpoint's weights strictly.

    Args:
        config: the config the checkpoint was trained with.
        checkpoint: a ``.pth`` written by ``coralseg train`` (or MMSeg).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        half: float16 weights and activations; default: on for CUDA, off on CPU.
    """
    from coral_core.models import build_segmentor

    config = Path(config)
    cfg = read_config(config)
    device_obj = torch.device(device)
    if device_obj.type == "cuda" and not torch.cuda.is_available():
        raise CoralsegError(f"device {device!r} asked for, but this machine has no CUDA GPU")
    flush_subnormals(device_obj)  # first: torch's worker threads take it when they start
    state = load_checkpoint_file(checkpoint)
    cfg.model.backbone.checkpoint = None  # the checkpoint below holds every weight
    encoding = encoding_from_checkpoint(state, cfg)
    cfg.model.decode_head.num_classes = encoding.num_labels
    network = build_segmentor(cfg.model)
    load_weights_strictly(network, state, checkpoint, config.name)
    half = device_obj.type == "cuda" if half is None else half
    if half and device_obj.type != "cuda":
        raise CoralsegError("half precision needs a CUDA device")
    network = network.to(device_obj).eval()
    if half:
        network = network.half()
    test_cfg = cfg.model.get("test_cfg", {})
    window = _side(test_cfg.get("crop_size", (518, 518)))
    stride = _side(test_cfg.get("stride", (window // 2, window // 2)))
    preprocessor = cfg.model.data_preprocessor
    stored_resize = state.get("meta", {}).get("coralseg", {}).get("inference_resize")
    if stored_resize is not None:
        resize = InferenceResize.from_dict(stored_resize)
    elif "inference_resize" in state.get("meta", {}).get("coralseg", {}):
        resize = None  # recorded: native resolution
    else:
        resize = inference_resize_from_config(cfg)
    return SemanticModel(
        network=network,
        encoding=encoding,
        device=device_obj,
        window=window,
        stride=stride,
        mean=tuple(float(v) for v in preprocessor.mean),
        std=tuple(float(v) for v in preprocessor.std),
        half=half,
        resize=resize,
        long_side=state.get("meta", {}).get("coralseg", {}).get("long_side"),
    )


def _side(size: int | tuple[int, int] | list[int]) -> int:
    if isinstance(size, int):
        return size
    if size[0] != size[1]:
        raise CoralsegError(f"square sliding windows only, got {tuple(size)}")
    return int(size[0])


def window_origins(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows along one axis, as MMSeg's slide inference places them.

    The last window ends exactly at ``length``; ``window <= length``.
    """
    if length <= window:
        return [0]
    steps = math.ceil((length - window) / stride)
    return [min(i * stride, length - window) for i in range(steps + 1)]


def predict_logits(
    model: SemanticModel, image: np.ndarray, batch_size: int | None = None
) -> torch.Tensor:
    """Averaged sliding-window logits of one image at the resolution given.

    Args:
        image: ``HxWx3`` uint8 RGB.
        batch_size: windows per forward pass (None: ``model.default_batch_size``).

    Returns:
        ``(C, H, W)`` float32 tensor on the model's device, ``C = model.num_labels``.
    """
    return torch.cat([band for _, band in iter_logit_bands(model, image, batch_size)], dim=1)


@torch.inference_mode()
def iter_logit_bands(
    model: SemanticModel, image: np.ndarray, batch_size: int | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Sliding-window logits of one image, row band by row band, as MMSeg's slide mode.

    Windows are visited row by row, as many rows together as fill a batch; the rows above
    the next rows of windows are then final, so only a band of logits (a window plus the
    rows of one batch) exists at a time.

    Yields:
        ``(first_row, (C, rows, W) float32)`` on the model's device, in row order.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    batch_size = model.default_batch_size if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    dtype = torch.float16 if model.half else torch.float32
    mean = torch.tensor(model.mean, device=model.device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, device=model.device).view(1, 3, 1, 1)
    # Windows never exceed the image (a smaller image is one window), as in MMSeg.
    window_h, window_w = min(model.window, height), min(model.window, width)
    row_origins = window_origins(height, window_h, model.stride)
    column_origins = window_origins(width, window_w, model.stride)
    labels = model.num_labels
    # Rows of windows go together until they fill a batch (a narrow image has few a row).
    group = max(1, math.ceil(batch_size / len(column_origins)))
    logits = torch.zeros((labels, 0, width), device=model.device)
    counts = torch.zeros((1, 0, width), device=model.device)
    top = 0  # image row of logits[:, 0]
    for first in range(0, len(row_origins), group):
        ys = row_origins[first : first + group]
        missing = ys[-1] + window_h - (top + logits.shape[1])
        if missing > 0:
            logits = torch.cat([logits, logits.new_zeros((labels, missing, width))], dim=1)
            counts = torch.cat([counts, counts.new_zeros((1, missing, width))], dim=1)
        windows = [(y, x) for y in ys for x in column_origins]
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            crops = np.stack([image[y : y + window_h, x : x + window_w] for y, x in chunk])
            batch = torch.from_numpy(crops).to(model.device).permute(0, 3, 1, 2).float()
            out = forward_windows(model.network, ((batch - mean) / std).to(dtype))
            for (y, x), crop_logits in zip(chunk, out, strict=True):
                logits[:, y - top : y - top + window_h, x : x + window_w] += crop_logits.float()
                counts[:, y - top : y - top + window_h, x : x + window_w] += 1
        following = first + group
        done = row_origins[following] if following < len(row_origins) else height
        if done > top:
            yield top, logits[:, : done - top] / counts[:, : done - top]
            logits, counts = logits[:, done - top :], counts[:, done - top :]
            top = done


def forward_windows(network: torch.nn.Module, crops: torch.Tensor) -> torch.Tensor:
    """Logits of a batch of windows at their own resolution (decode head + bilinear resize)."""
    features = network.extract_feat(crops)
    logits = network.decode_head.forward(features)
    return functional.interpolate(
        logits,
        size=crops.shape[2:],
        mode="bilinear",
        align_corners=network.decode_head.align_corners,
    )


@torch.inference_mode()
def iter_probability_bands(
    model: SemanticModel, image: np.ndarray, batch_size: int | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """Class probabilities of an image at its own size, band by band of rows.

    The image is first resized as the training photos were (:attr:`SemanticModel.long_side`),
    then as the model's test pipeline does (:attr:`SemanticModel.resize`); the logits are
    resized back to the image's size, bilinear, before the softmax: the rule MMSeg's
    ``coralseg test`` follows on prepared photos.

    Yields:
        ``(first_row, (C, rows, W) float32)`` softmax over channels, in row order.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    seen = resize_like_prepare(image, model.long_side)
    size = model.resize.output_size(*seen.shape[:2]) if model.resize else seen.shape[:2]
    if size == (height, width):
        bands = iter_logit_bands(model, image, batch_size)
    else:
        small = predict_logits(model, resize_image(seen, *size), batch_size)
        align = bool(model.network.decode_head.align_corners)
        bands = upsample_bands(small, height, width, align)
    for top, logits in bands:
        yield top, torch.softmax(logits, dim=0)


def predict(
    model: SemanticModel, image: np.ndarray, batch_size: int | None = None
) -> SemanticPrediction:
    """The semantic stage's compact summary of an ``HxWx3`` uint8 RGB image.

    Memory beyond the summary's 6 bytes a pixel is one band of logits.
    """
    return SemanticPrediction.concatenate(
        [
            summarize_probabilities(probabilities, model.encoding)
            for _, probabilities in iter_probability_bands(model, image, batch_size)
        ]
    )


def photo_pixels_per_model_pixel(model: SemanticModel, height: int, width: int) -> float:
    """How many pixels of an ``height x width`` photo one pixel of the model's working scale
    spans a side: the photo's long side over the long side the model sees it at (resized as
    :func:`iter_probability_bands` does). 1 for a model run at native resolution."""
    seen = long_side_size(height, width, model.long_side)
    size = model.resize.output_size(*seen) if model.resize else seen
    return max(height, width) / max(size)


def with_overlap(model: SemanticModel, overlap: float) -> SemanticModel:
    """The same model with sliding windows overlapping by ``overlap`` (0 <= overlap < 1).

    The config's test stride is usually half a window (overlap 0.5, MMSeg's and the seed's
    setting); overlap 0 visits each pixel once, about 3-4x less compute on large images, at
    the cost of slightly less smooth predictions across window borders.
    """
    overlap = check_overlap(overlap)
    return replace(model, stride=max(1, round(model.window * (1 - overlap))))


def check_overlap(overlap: float) -> float:
    """``overlap`` as a float when it is a window overlap, 0 <= overlap < 1.

    Raises:
        CoralsegError: it is not (names the setting ``overlap``).
    """
    if not 0 <= overlap < 1:
        raise CoralsegError(
            f"window overlap must be in [0, 1), got {overlap}", settings=("overlap",)
        )
    return float(overlap)
