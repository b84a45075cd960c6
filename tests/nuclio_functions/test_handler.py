"""The real handlers through nuclio-sdk's test platform, with real HTTP events: every answer is
checked against CVAT's rules (cvat_rules.py), and so is every bad request.

The function folders hold the PyTorch layout of the model files (no ONNX export, which is
slow); test_package.py runs the packaged ONNX function. The two-stage function is slow on a
CPU (SAM ViT-B encodes every image at 1024 px), hence marked slow.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from nuclio_sdk import Response
from nuclio_sdk.test import Platform
from PIL import Image

from nuclio_functions.semantic import main as semantic_main
from nuclio_functions.two_stage import main as two_stage_main
from tests.coral_core.test_semantic_inference import tiny_checkpoint  # noqa: F401  (fixture)
from tests.nuclio_functions.conftest import FUNCTION_ENV, http_event, request_body, torch_layout
from tests.nuclio_functions.cvat_rules import check_detections, check_spec

MAINS = {"two-stage": two_stage_main, "semantic": semantic_main}


def call(served: SimpleNamespace, raw: bytes, content_type: str = "application/json") -> dict:
    """What the processor sends back: status_code, content_type, body (str)."""
    handler_output = served.platform.call_handler(
        served.main.handler, http_event(raw, content_type)
    )
    return Response.from_entrypoint_output(json.dumps, handler_output)


def spec_of(served: SimpleNamespace) -> list[dict]:
    """The label spec package-nuclio writes into this model's function.yaml, as CVAT reads it."""
    from coral_core.formats.cvat_shapes import label_spec
    from nuclio_functions.packaging import render_function_yaml

    predictor = served.platform._get_handler_context(served.main.handler).user_data.predictor
    template = (Path(served.main.__file__).parent / "function.yaml").read_text()
    text = render_function_yaml(template, "a-name", "A name", label_spec(predictor.encoding))
    return check_spec(yaml.safe_load(text)["metadata"]["annotations"]["spec"])


@pytest.fixture(
    scope="module", params=["semantic", pytest.param("two-stage", marks=pytest.mark.slow)]
)
def served(request, tiny_checkpoint, photo, tmp_path_factory) -> SimpleNamespace:  # noqa: F811
    """A platform whose first call ran ``init_context`` on the function folder's models."""
    kind = request.param
    sam = request.getfixturevalue("sam_checkpoint") if kind == "two-stage" else None
    folder = torch_layout(tmp_path_factory.mktemp(kind), *tiny_checkpoint, sam)
    platform = Platform()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CORALSEG_MODEL_DIR", str(folder))
        for name, value in FUNCTION_ENV.items():
            patch.setenv(name, value)
        served = SimpleNamespace(kind=kind, platform=platform, main=MAINS[kind])
        served.first = call(served, request_body(photo))
    served.spec = spec_of(served)
    served.size = Image.open(io.BytesIO(photo)).size
    return served


def test_detections_follow_cvat_rules(served) -> None:
    answer = served.first
    assert answer["status_code"] == 200 and answer["content_type"] == "application/json"
    items = json.loads(answer["body"])
    width, height = served.size
    masks = check_detections(items, served.spec, height, width)
    assert len(masks) > 0, "the thresholds make every argmax region a colony"
    confidences = [float(item["confidence"]) for item in items]
    assert confidences == sorted(confidences, reverse=True)
    # colonies do not overlap: overlaps go to the higher score
    assert int(np.sum(masks, axis=0).max()) == 1
    spec_names = {label["name"] for label in served.spec}
    assert {item["label"] for item in items} <= spec_names


def test_threshold_is_the_score_cut(served, photo) -> None:
    everything = json.loads(served.first["body"])
    scores = sorted(float(item["confidence"]) for item in everything)
    cut = scores[len(scores) // 2]
    answer = call(served, request_body(photo, threshold=cut))
    assert answer["status_code"] == 200
    kept = json.loads(answer["body"])
    assert kept and all(float(item["confidence"]) >= cut for item in kept)
    assert len(kept) == sum(score >= cut for score in scores)


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 90, 120)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_REQUESTS = {
    "empty body": (b"", 400, "empty"),
    "not JSON": (b"image=abc", 400, "not JSON"),
    "JSON list": (b"[1, 2]", 400, "JSON object"),
    "no image": (b'{"threshold": 0.5}', 400, 'no "image"'),
    "image not a string": (b'{"image": 42}', 400, "base64 string"),
    "not base64": (b'{"image": "%%% not base64 %%%"}', 400, "not valid base64"),
    "not an image": (request_body(b"GIF89a but not really"), 400, "not a readable"),
    "threshold not a number": (request_body(_png(8, 8), threshold="high"), 400, "threshold"),
    "threshold above 1": (request_body(_png(8, 8), threshold=1.5), 400, "between 0 and 1"),
    "too many pixels": (request_body(_png(8193, 8193)), 413, "pixels"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_sentence(served, case) -> None:
    raw, status, words = BAD_REQUESTS[case]
    answer = call(served, raw)
    assert answer["status_code"] == status
    assert answer["content_type"] == "text/plain"
    assert words in answer["body"] and "Traceback" not in answer["body"]


def test_too_large_a_body_is_413(served) -> None:
    from nuclio_functions import serving

    huge = b'{"image": "' + b"A" * (serving.MAX_REQUEST_MIB * 2**20 + 4) + b'"}'
    answer = call(served, huge)
    assert answer["status_code"] == 413
    assert "MiB" in answer["body"]


def test_base64_padding_errors_are_400(served, photo) -> None:
    text = base64.b64encode(photo).decode()[:-1]
    answer = call(served, json.dumps({"image": text}).encode())
    assert answer["status_code"] == 400


def test_a_failure_inside_the_model_is_a_500_sentence(served, photo) -> None:
    context = served.platform._get_handler_context(served.main.handler)
    predictor = context.user_data.predictor
    semantic = predictor.semantic
    try:
        # a model whose window forward pass breaks, as a CUDA OOM or a corrupt graph would
        predictor.semantic = SimpleNamespace(**{**semantic.__dict__, "network": None})
        answer = call(served, request_body(photo))
    finally:
        predictor.semantic = semantic
    assert answer["status_code"] == 500
    assert answer["body"].startswith("inference failed on this image")
    # after the bad requests above and this failure, the worker answers as it did at first
    assert call(served, request_body(photo))["body"] == served.first["body"]


def test_non_json_content_type_with_a_json_body_is_read(served, photo) -> None:
    answer = call(served, request_body(photo), content_type="text/plain")
    assert answer["status_code"] == 200
    assert answer["body"] == served.first["body"]


def test_exif_orientation_is_applied(served) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    rotated = Image.fromarray(pixels)
    exif = rotated.getexif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 60 wide, 90 high
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", exif=exif)
    answer = call(served, request_body(buffer.getvalue()))
    assert answer["status_code"] == 200
    items = json.loads(answer["body"])
    assert items, "the random model finds regions in any image at thresholds 0"
    check_detections(items, served.spec, height=90, width=60)


def test_two_concurrent_requests_are_both_answered(served) -> None:
    """Two requests at once (a Detectors call during a task run, or two users): both get the
    answer one request alone gets."""
    rng = np.random.default_rng(11)
    small = request_body(_png_of(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)))
    alone = call(served, small)
    barrier = threading.Barrier(2)

    def one(_: int) -> dict:
        barrier.wait(10)
        return call(served, small)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(one, range(2)))
    assert alone["status_code"] == 200 and json.loads(alone["body"])
    assert [a["status_code"] for a in answers] == [200, 200]
    assert all(a["body"] == alone["body"] for a in answers)


def _png_of(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("folder", sorted(MAINS))
def test_requests_queue_for_a_busy_worker(folder: str) -> None:
    """function.yaml: a request waits for a busy worker as long as a request may run
    (Nuclio answers 503 only after workerAvailabilityTimeoutMilliseconds), and uses
    numWorkers, the field CVAT's own function.yaml files use."""
    package = Path(MAINS[folder].__file__).parent
    for file in ("function.yaml", "function-gpu.yaml"):
        spec = yaml.safe_load((package / file).read_text())["spec"]
        trigger = spec["triggers"]["myHttpTrigger"]
        assert "maxWorkers" not in trigger and trigger["numWorkers"] >= 1
        event_timeout_ms = 1000 * int(spec["eventTimeout"].rstrip("s"))
        assert trigger["workerAvailabilityTimeoutMilliseconds"] >= event_timeout_ms, file


def test_a_16_bit_image_decodes_as_everywhere_else(served) -> None:
    """The function reads a 16-bit PNG by coralseg's one rule (top 8 bits), as the bridge and
    `coralseg infer` do: the same colonies as for its 8-bit version."""
    rng = np.random.default_rng(5)
    deep = rng.integers(0, 65536, (48, 64), dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(deep).save(buffer, format="PNG")
    eight = io.BytesIO()
    Image.fromarray((deep >> 8).astype(np.uint8)).convert("RGB").save(eight, format="PNG")
    answer = call(served, request_body(buffer.getvalue()))
    assert answer["status_code"] == 200
    assert answer["body"] == call(served, request_body(eight.getvalue()))["body"]


def test_colony_sizes_come_from_the_function_yaml_environment(tmp_path: Path) -> None:
    from coral_core.inference.instances import RefineSettings
    from nuclio_functions.serving import FunctionSettings

    env = {**FUNCTION_ENV, "CORALSEG_MIN_THICKNESS": "4", "CORALSEG_NECK_RATIO": "0.5"}
    refine = FunctionSettings.from_env(tmp_path, env).refine
    assert (refine.min_area, refine.min_thickness, refine.neck_ratio) == (16, 4, 0.5)
    assert FunctionSettings.from_env(tmp_path, {}).refine == RefineSettings()
