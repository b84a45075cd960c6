"""<model>.onnx.json: the ONNX model's sidecar, written and read back by one module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from coral_core.inference.onnx_sidecar import (
    SIDECAR_FORMAT,
    OnnxSidecar,
    read_onnx_sidecar,
    sidecar_path,
    write_onnx_sidecar,
)
from coral_core.inference.scaling import InferenceResize
from coral_core.labels.taxonomy import EILAT, MaskEncoding

SIDECAR = OnnxSidecar(
    window=512,
    stride=341,
    mean=(123.675, 116.28, 103.53),
    std=(58.395, 57.12, 57.375),
    encoding=MaskEncoding(EILAT, background_is_ignore=True),
    inference_resize=InferenceResize(scale=(2048, 512)),
    long_side=1024,
)


@pytest.mark.parametrize("resize", [InferenceResize(scale=(2048, 512)), None])
def test_a_written_sidecar_reads_back_equal(tmp_path: Path, resize) -> None:
    sidecar = OnnxSidecar(**{**SIDECAR.__dict__, "inference_resize": resize})
    path = write_onnx_sidecar(tmp_path / "m.onnx", sidecar)
    assert path == sidecar_path(tmp_path / "m.onnx") == tmp_path / "m.onnx.json"
    assert json.loads(path.read_text())["format"] == SIDECAR_FORMAT
    assert read_onnx_sidecar(tmp_path / "m.onnx") == sidecar


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="coralseg-onnx/0"), "is not a 'coralseg-onnx/1' file"),
        (lambda d: d.pop("inference_resize"), "lacks the fields inference_resize"),
        (lambda d: d.update(opset=18), "does not define"),
        (lambda d: d.update(window=0), "window and stride must be positive"),
        (lambda d: d.update(mean=[1, 2]), "mean must be three numbers"),
    ],
)
def test_anything_else_is_refused_with_a_sentence(tmp_path: Path, change, message) -> None:
    data = json.loads(write_onnx_sidecar(tmp_path / "m.onnx", SIDECAR).read_text())
    change(data)
    (tmp_path / "m.onnx.json").write_text(json.dumps(data))
    with pytest.raises(CoralsegError, match=message) as caught:
        read_onnx_sidecar(tmp_path / "m.onnx")
    assert "export the model to ONNX again" in str(caught.value)
