"""The JSON sidecar ``<model>.onnx.json`` of an exported semantic model: how to run the graph.

The file (JSON object, format tag :data:`SIDECAR_FORMAT`)::

    {"format": "coralseg-onnx/1", "window": 512, "stride": 341,
     "mean": [R, G, B], "std": [R, G, B],
     "input": "...", "output": "...",            # one line each, for people reading it
     "encoding": MaskEncoding.to_dict(),
     "inference_resize": InferenceResize.to_dict() | null,   # null: native resolution
     "long_side": 1024 | null}     # the training photos' long side; null: kept

:func:`write_onnx_sidecar` writes it beside the graph; :func:`read_onnx_sidecar` reads
exactly that back and refuses anything else with a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coral_core.atomic import write_json_atomically
from coral_core.errors import CoralsegError
from coral_core.formats.tagged_json import read_tagged_json
from coral_core.inference.scaling import InferenceResize
from coral_core.labels.taxonomy import MaskEncoding

SIDECAR_FORMAT = "coralseg-onnx/1"
_INPUT = "windows: (B, 3, window, window) float32 RGB, (pixel - mean) / std"
_OUTPUT = "logits: (B, C, window, window); average overlapping windows, softmax"
_KEYS = frozenset(
    {
        "format",
        "window",
        "stride",
        "mean",
        "std",
        "input",
        "output",
        "encoding",
        "inference_resize",
        "long_side",
    }
)


@dataclass(frozen=True)
class OnnxSidecar:
    """What a runtime needs around the graph: sliding windows, normalisation, classes.

    Attributes:
        window, stride: sliding-window side and step, pixels.
        mean, std: per-channel RGB normalisation (``(pixel - mean) / std``, pixels 0..255).
        encoding: what the logits' channels are.
        inference_resize: the test-time resize the windows expect (None: native resolution).
        long_side: the long side the training photos were shrunk to (None: kept); applied
            before ``inference_resize``.
    """

    window: int
    stride: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    encoding: MaskEncoding
    inference_resize: InferenceResize | None
    long_side: int | None


def sidecar_path(onnx_path: str | Path) -> Path:
    """Where the sidecar of ``onnx_path`` lives: the same name plus ``.json``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".json")


def write_onnx_sidecar(onnx_path: str | Path, sidecar: OnnxSidecar) -> Path:
    """Write the sidecar of ``onnx_path`` atomically; returns its path."""
    path = sidecar_path(onnx_path)
    resize = sidecar.inference_resize
    data = {
        "format": SIDECAR_FORMAT,
        "window": sidecar.window,
        "stride": sidecar.stride,
        "mean": list(sidecar.mean),
        "std": list(sidecar.std),
        "input": _INPUT,
        "output": _OUTPUT,
        "encoding": sidecar.encoding.to_dict(),
        "inference_resize": None if resize is None else resize.to_dict(),
        "long_side": sidecar.long_side,
    }
    write_json_atomically(path, data, indent=2)
    return path


def read_onnx_sidecar(onnx_path: str | Path) -> OnnxSidecar:
    """The sidecar of ``onnx_path``.

    Raises:
        CoralsegError: the sidecar is missing, unreadable, of another format or version, or
            a field is missing, unknown or malformed.
    """
    path = sidecar_path(onnx_path)
    redo = "export the model to ONNX again"
    data = read_tagged_json(path, SIDECAR_FORMAT, _KEYS, redo)
    try:
        window, stride, long_side = data["window"], data["stride"], data["long_side"]
        if not (_positive(window) and _positive(stride)):
            raise ValueError(f"window and stride must be positive integers, got {window}, {stride}")
        if long_side is not None and not _positive(long_side):
            raise ValueError(f"long_side must be a positive integer or null, got {long_side!r}")
        resize = data["inference_resize"]
        return OnnxSidecar(
            window=window,
            stride=stride,
            mean=_triple(data["mean"], "mean"),
            std=_triple(data["std"], "std"),
            encoding=MaskEncoding.from_dict(data["encoding"]),
            inference_resize=None if resize is None else InferenceResize.from_dict(resize),
            long_side=long_side,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CoralsegError(f"{path} has a malformed field ({err}); {redo}") from None


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError(f"{name} must be three numbers (R, G, B), got {value!r}")
    red, green, blue = (float(v) for v in value)
    return red, green, blue
