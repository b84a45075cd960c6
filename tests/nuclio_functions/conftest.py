"""Fixtures of the Nuclio function tests: function folders made from the tiny random model
(tests/coral_core/test_semantic_inference.py) and a random CoralSCoP ViT-B in the real
layout (tests/coral_core/sam_layout.py), and a photo to send.

* ``torch_layout``: folders in the PyTorch layout (``best_segformer.pth`` +
  ``best_segformer_config.py``), quick to make;
* ``packaged`` / ``unpacked``: the zips ``coralseg package-nuclio`` writes (the semantic model
  exported to ONNX: about a minute per zip on two busy cores, so only slow tests use them).

Thresholds 0 / 0 make every pixel "coral", so the random model's argmax regions become
colonies and every response has items to check.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.coral_core.test_semantic_inference import tiny_checkpoint  # noqa: F401  (fixture)

FUNCTION_ENV = {
    "CORALSEG_DEVICE": "cpu",
    "CORALSEG_MIN_THRESHOLD": "0",
    "CORALSEG_UNSURE_THRESHOLD": "0",
    "CORALSEG_MIN_AREA": "16",
    "CORALSEG_OVERLAP": "0",
}


@pytest.fixture(scope="module")
def sam_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights in CoralSCoP's ViT-B layout, saved as its official file is."""
    from tests.coral_core.sam_layout import official_state_dict

    path = tmp_path_factory.mktemp("sam") / "vit_b_coralscop_random.pth"
    torch.save(official_state_dict("vit_b", coralscop=True), path)
    return path


def torch_layout(folder: Path, config: Path, weights: Path, sam: Path | None = None) -> Path:
    """A function folder with the model files under their standard names (PyTorch layout)."""
    from nuclio_functions import SAM_WEIGHTS, SEMANTIC_CONFIG, SEMANTIC_WEIGHTS

    (folder / SEMANTIC_CONFIG).symlink_to(config)
    (folder / SEMANTIC_WEIGHTS).symlink_to(weights)
    if sam is not None:
        (folder / SAM_WEIGHTS).symlink_to(sam)
    return folder


@pytest.fixture(scope="module")
def packaged(tiny_checkpoint, sam_checkpoint, tmp_path_factory) -> dict[str, Path]:  # noqa: F811
    """``{kind: nuclio.zip}`` for both function kinds, written by ``coralseg package-nuclio``."""
    from coralseg.cli import main

    config, weights = tiny_checkpoint
    folder = tmp_path_factory.mktemp("packages")
    zips = {}
    for kind in ("two-stage", "semantic"):
        out = folder / f"{kind}.zip"
        args = ["package-nuclio", "--kind", kind, "--segformer-config", str(config)]
        args += ["--segformer-weights", str(weights), "--out", str(out)]
        if kind == "two-stage":
            args += ["--sam-checkpoint", str(sam_checkpoint)]
        assert main(args) == 0
        zips[kind] = out
    return zips


@pytest.fixture(scope="module")
def unpacked(packaged, tmp_path_factory) -> dict[str, Path]:
    """Each zip unpacked into its own folder, as ``nuctl deploy`` copies it to /opt/nuclio."""
    folders = {}
    for kind, archive in packaged.items():
        folder = tmp_path_factory.mktemp(kind)
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(folder)
        folders[kind] = folder
    return folders


@pytest.fixture(scope="module")
def photo(request: pytest.FixtureRequest) -> bytes:
    """A quadrat photo's JPEG bytes where ../shared/data exists, else a generated JPEG."""
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        rng = np.random.default_rng(1)
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((400, 300), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()
    return sorted((shared / "quadrats").glob("*.jpg"))[0].read_bytes()


def http_event(raw: bytes, content_type: str = "application/json"):
    """An HTTP POST as Nuclio's Python wrapper builds it: the processor's message (msgpack,
    raw mode, here already unpacked) deserialized by nuclio-sdk, which parses JSON bodies."""
    from nuclio_sdk import Event
    from nuclio_sdk.event import EventDeserializerKinds

    message = {
        b"body": raw,
        b"content_type": content_type.encode(),
        b"trigger": {b"kind": b"http", b"name": b"myHttpTrigger"},
        b"fields": {},
        b"headers": {b"Content-Type": content_type.encode()},
        b"id": b"00000000-0000-0000-0000-000000000001",
        b"method": b"POST",
        b"path": b"/",
        b"size": len(raw),
        b"timestamp": 0,
        b"url": b"",
        b"shard_id": 0,
        b"num_shards": 0,
        b"type": b"",
        b"type_version": b"",
        b"version": 0,
    }
    return Event.deserialize(message, kind=EventDeserializerKinds.msgpack_raw)


def request_body(image: bytes, **extra: object) -> bytes:
    """CVAT's detector request: ``{"image": base64, ...}`` as JSON bytes."""
    return json.dumps({"image": base64.b64encode(image).decode("ascii"), **extra}).encode()


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in FUNCTION_ENV.items():
        monkeypatch.setenv(name, value)
    yield FUNCTION_ENV
