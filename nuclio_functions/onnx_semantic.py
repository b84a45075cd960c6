"""The semantic model on onnxruntime, so a Nuclio image needs neither mmcv nor MMSegmentation.

:func:`coral_core.inference.onnx_export.export_onnx` writes the network's window-to-logits
graph and a JSON sidecar (window, stride, normalisation, mask encoding). This module loads
both into a :class:`coral_core.inference.semantic.SemanticModel` whose ``network`` runs the
graph: everything around it (the test-time resize, sliding windows, averaging, softmax, the
instance stage) stays coral_core's own code, so both runtimes differ only in the window
forward pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import torch

from coral_core.errors import CoralsegError
from coral_core.inference.onnx_sidecar import read_onnx_sidecar
from coral_core.inference.semantic import SemanticModel


class _SameSize(torch.nn.Module):
    """Stands for MMSeg's decode head: the graph's logits are already at window size."""

    align_corners = False

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits


class OnnxWindowNetwork(torch.nn.Module):
    """An exported graph behind the two calls of MMSeg's ``EncoderDecoder`` that
    :func:`coral_core.inference.semantic.forward_windows` makes.

    ``extract_feat`` runs the whole graph (``(B, 3, w, w)`` normalised float32 windows ->
    ``(B, C, w, w)`` logits); ``decode_head`` passes them on unchanged, and the bilinear
    resize to the window's own size that follows is the identity.
    """

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        super().__init__()
        self.session = session
        self.decode_head = _SameSize()

    def extract_feat(self, windows: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(windows.detach().cpu().numpy(), dtype=np.float32)
        (logits,) = self.session.run(["logits"], {"windows": array})
        return torch.from_numpy(logits)


def providers_for(device: str) -> list[str]:
    """onnxruntime execution providers for ``cpu`` or ``cuda[:N]``."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise CoralsegError(
                f"device {device!r} asked for, but this onnxruntime has no CUDA provider; "
                "install onnxruntime-gpu (function-gpu.yaml does) or set CORALSEG_DEVICE=cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise CoralsegError(f"device must be cpu or cuda[:N], got {device!r}")


def load_onnx_semantic_model(path: str | Path, device: str = "cpu") -> SemanticModel:
    """Load ``path`` (ONNX) and its sidecar ``path.json`` as a float32 semantic model.

    Sliding windows are assembled on the CPU; the graph runs on ``device``.
    """
    path = Path(path)
    if not path.is_file():
        raise CoralsegError(f"{path} does not exist; export the model with `coralseg export-onnx`")
    info = read_onnx_sidecar(path)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the model's shape-inference notes are noise
    # Subnormal floats as zero on the CPU, as coralseg's torch models run
    # (coral_core.inference.cpu_math).
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=providers_for(device)
        )
    except Exception as err:  # onnxruntime raises its own unexported exception types
        raise CoralsegError(f"onnxruntime cannot load {path}: {err}") from None
    return SemanticModel(
        network=OnnxWindowNetwork(session),
        encoding=info.encoding,
        device=torch.device("cpu"),
        window=info.window,
        stride=info.stride,
        mean=info.mean,
        std=info.std,
        half=False,
        resize=info.inference_resize,
        long_side=info.long_side,
    )
