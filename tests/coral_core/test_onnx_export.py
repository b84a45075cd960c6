from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from coral_core.inference.onnx_export import export_onnx
from coral_core.inference.semantic import forward_windows, load_semantic_model
from tests.coral_core.test_semantic_inference import tiny_checkpoint  # noqa: F401  (fixture)


def test_onnx_outputs_match_pytorch(tiny_checkpoint, tmp_path: Path) -> None:  # noqa: F811
    config, checkpoint = tiny_checkpoint
    model = load_semantic_model(config, checkpoint)
    onnx_path, sidecar = export_onnx(model, tmp_path / "tiny.onnx")
    info = json.loads(sidecar.read_text())
    assert info["window"] == 224 and info["encoding"]["taxonomy"]["name"] == "eilat"

    windows = torch.randn(3, 3, 224, 224)  # a batch size other than the export example's
    with torch.no_grad():
        expected = forward_windows(model.network, windows).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"windows": windows.numpy()})
    assert logits.shape == (3, 10, 224, 224)
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)


def test_export_onnx_command(tiny_checkpoint, tmp_path: Path, capsys) -> None:  # noqa: F811
    from coralseg.cli import main

    config, checkpoint = tiny_checkpoint
    out = tmp_path / "model.onnx"
    assert main(["export-onnx", str(config), str(checkpoint), "--out", str(out)]) == 0
    assert out.is_file() and out.with_name("model.onnx.json").is_file()
    assert main(["export-onnx", str(config), str(tmp_path / "nope.pth"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
