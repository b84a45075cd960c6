"""What the benchmarks share: random-weight models, test images, clocks, CLI defaults.

Not a library module: imported by the scripts in this folder, run from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The repository first on the path, as pytest has it: ``tests`` (a package) is then this
# repository's, whose generated test images the benchmarks share, not mmsegmentation's.
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data"
VITB_CONFIG = REPO / "configs" / "dinov2-vitb14-segformer_150e_criobe-finegrained-518x518.py"
TINY_CONFIG = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"


def cli_defaults(command: str, *options: str) -> argparse.Namespace:
    """The defaults of some options of a ``coralseg`` command, read from its own parser.

    ``options`` are destination names (``"min_area"`` for ``--min-area``).
    """
    module = importlib.import_module(f"coralseg.commands.{command}")
    subparsers = argparse.ArgumentParser().add_subparsers()
    module.register(subparsers)
    parser = subparsers.choices[command]
    return argparse.Namespace(**{option: parser.get_default(option) for option in options})


def device_description(device: str) -> str:
    """The device in words: the GPU's name, or the CPU's model, threads and vector units."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{model}, {torch.get_num_threads()} torch threads, "
        f"vector unit {torch.backends.cpu.get_cpu_capability()}, "
        f"oneDNN bf16 kernels: {'yes' if cpu_has_bf16() else 'no (emulated, slow)'}"
    )


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function: Callable[[], Any], device: str) -> tuple[Any, float]:
    """``(result, seconds)`` of one call, with the GPU's queue drained on both sides."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def quadrat_mosaic(size: int, folder: Path | None = None) -> np.ndarray:
    """A ``size x size`` uint8 RGB mosaic of four quadrat photos (2 x 2)."""
    from PIL import Image

    folder = folder or DATA / "quadrats"
    photos = sorted(folder.glob("*.jpg"))[:4]
    if len(photos) < 4:
        raise SystemExit(f"need 4 quadrat photos in {folder}; pass --data")
    half = size // 2
    tiles = [np.array(Image.open(p).convert("RGB").resize((half, half))) for p in photos]
    top, bottom = np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)
    return np.concatenate([top, bottom], axis=0)


def quadrat_photos(count: int, side: int, folder: Path | None = None) -> list[np.ndarray]:
    """``count`` quadrat photos as uint8 RGB, each resized to ``side`` px on its long side."""
    from PIL import Image

    folder = folder or DATA / "quadrats"
    photos = sorted(folder.glob("*.jpg"))[:count]
    if not photos:
        raise SystemExit(f"no quadrat photos in {folder}; pass --data")
    out = []
    for path in photos:
        image = Image.open(path).convert("RGB")
        scale = side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)))
        out.append(np.array(image))
    return out


def random_semantic_checkpoint(
    config: Path, folder: Path, encoding, seed: int = 0
) -> tuple[Path, Path]:
    """Random weights for ``config``'s network, saved as ``coralseg train`` saves them.

    Returns ``(config, checkpoint)`` in ``folder``; the config has no backbone checkpoint.
    """
    import torch
    from mmengine.config import Config

    from coral_core.models import build_segmentor

    cfg = Config.fromfile(str(config))
    cfg.model.backbone.checkpoint = None
    cfg.model.decode_head.num_classes = encoding.num_labels
    torch.manual_seed(seed)
    network = build_segmentor(cfg.model)
    with quiet_mmengine():
        network.init_weights()
    checkpoint = folder / f"{config.stem}.pth"
    meta = {"coralseg": {"encoding": encoding.to_dict()}}
    torch.save({"state_dict": network.state_dict(), "meta": meta}, checkpoint)
    saved_config = folder / config.name
    cfg.dump(str(saved_config))
    return saved_config, checkpoint


@contextlib.contextmanager
def quiet_mmengine() -> Iterator[None]:
    """mmengine's INFO lines (one per initialised weight) silenced for the block."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def random_sam_checkpoint(folder: Path, size: str = "vit_b", seed: int = 0) -> Path:
    """Random SAM weights in Meta's layout (segment-anything's own initialisation)."""
    import torch
    from segment_anything import sam_model_registry

    torch.manual_seed(seed)
    path = folder / f"sam_{size}_random.pth"
    torch.save(sam_model_registry[size]().state_dict(), path)
    return path


def make_coherent(network, kernel: int = 5, gain: float = 3.0) -> None:
    """Make a random-weight network's logits smooth and confident, as a trained model's are.

    A random network's class map is per-token noise, which would give SAM thousands of
    token-sized proposals. This box-filters the decode head's logits (``kernel`` tokens,
    about 70 px at 1/14 scale) and rescales each window's logits to ``gain`` standard
    deviations, so the class map has colony-sized regions and the coral probabilities span
    the CLI's thresholds. It changes the decode head's ``forward`` in place; every path
    that runs ``network`` (MMSeg's ``inference_model`` or coralseg) then sees the same
    logits, whatever its batch size (the rescaling is per window).
    """
    from torch.nn import functional

    head = network.decode_head
    forward = head.forward

    def coherent_forward(inputs):
        logits = forward(inputs)
        smooth = functional.avg_pool2d(
            logits.float(), kernel, stride=1, padding=kernel // 2, count_include_pad=False
        )
        centred = smooth - smooth.mean(dim=(1, 2, 3), keepdim=True)
        scale = centred.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
        return (gain * centred / scale).to(logits.dtype)

    head.forward = coherent_forward


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two label maps are equal."""
    if a.shape != b.shape:
        raise ValueError(f"label maps of different sizes: {a.shape} and {b.shape}")
    return float(np.count_nonzero(a == b)) / a.size


def ratio(slow: float, fast: float) -> str:
    """``slow / fast`` as ``"2.4x"``."""
    return f"{slow / fast:.2f}x" if fast > 0 else "n/a"
