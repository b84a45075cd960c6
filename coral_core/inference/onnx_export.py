"""Export of the semantic model to ONNX, for runtimes without PyTorch (e.g. a Nuclio function).

The exported graph takes a batch of normalised sliding windows and returns their logits at
window resolution, exactly what :func:`coral_core.inference.semantic.predict_logits` computes
per batch; a JSON sidecar records what a runtime needs to do the rest (window, stride,
normalisation, the mask encoding).
"""

from __future__ import annotations

from pathlib import Path

import torch

from coral_core.atomic import atomic_path
from coral_core.errors import CoralsegError
from coral_core.inference.onnx_sidecar import OnnxSidecar, write_onnx_sidecar
from coral_core.inference.semantic import SemanticModel, forward_windows

OPSET = 18


class _WindowLogits(torch.nn.Module):
    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return forward_windows(self.network, windows)


def export_onnx(model: SemanticModel, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (ONNX, dynamic batch) and its sidecar ``path`` + ``.json`` (how to use
    it, :mod:`coral_core.inference.onnx_sidecar`).

    Input ``windows``: ``(B, 3, window, window)`` float32, RGB normalised with the sidecar's
    mean/std. Output ``logits``: ``(B, C, window, window)`` float32.
    """
    if model.half:
        raise CoralsegError("export a float32 model (load it without half precision)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _WindowLogits(model.network).eval()
    # batch 2: torch.export would specialise a size-1 dimension to a constant
    example = torch.zeros(2, 3, model.window, model.window, device=model.device)
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamic_shapes={"windows": {0: batch}},
            input_names=["windows"],
            output_names=["logits"],
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
        )
    with atomic_path(path) as temporary:
        program.save(str(temporary))
    sidecar = write_onnx_sidecar(
        path,
        OnnxSidecar(
            window=model.window,
            stride=model.stride,
            mean=model.mean,
            std=model.std,
            encoding=model.encoding,
            inference_resize=model.resize,
            long_side=model.long_side,
        ),
    )
    return path, sidecar
