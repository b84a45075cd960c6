"""Floating-point mode of CPU inference.

Activations of a ViT on real photos reach subnormal floats (below 1.2e-38), which x86 CPUs
compute in slow microcode: flushing them to zero made a DINOv2 ViT-B window 22% faster on the
quadrat photos (``bench/profile_infer.py``), and changes no result beyond float rounding.
Inference servers (ONNX Runtime, OpenVINO) run this way by default; PyTorch does not.
"""

from __future__ import annotations

import torch


def flush_subnormals(device: str | torch.device) -> None:
    """Flush subnormal floats to zero in this process when ``device`` is the CPU.

    Left on (``torch.set_flush_denormal``); nothing changes on a GPU. The mode belongs to
    each thread, and torch's worker threads take the main thread's when they are created, at
    the process's first parallel operation: call this before it (the model loaders call it
    first thing), or the workers go on computing subnormals.
    """
    if torch.device(device).type == "cpu":
        torch.set_flush_denormal(True)
