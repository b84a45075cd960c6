"""What every coralseg Nuclio function shares: its model files, CVAT's detector request, the
answer.

A function folder (``nuctl deploy --path``) holds ``main.py``, ``function.yaml``, this package,
the ``coral_core`` modules inference needs and the model files under the standard names of
:mod:`nuclio_functions`:

* ``best_segformer.onnx`` + ``best_segformer.onnx.json``: the semantic model exported by
  :func:`coral_core.inference.onnx_export.export_onnx`, run with onnxruntime (no mmcv);
* or ``best_segformer.pth`` + ``best_segformer_config.py``: the same model for PyTorch and
  MMSegmentation (used when no ONNX file is present);
* ``vit_b_coralscop.pth``: the SAM or CoralSCoP checkpoint (two-stage functions only).

CVAT's detector request is JSON ``{"image": <base64 image file>, "threshold": <float>}``
(``threshold`` optional); the answer is :func:`coral_core.formats.cvat_shapes.nuclio_detections`.
A request CVAT could not have meant gets a 4xx answer with a sentence, a failure inside the
model a 500 with a sentence; the worker always survives to take the next request.

Deployers tune the function through environment variables in ``function.yaml``:
``CORALSEG_DEVICE`` (``cpu``, ``cuda``), ``CORALSEG_MIN_THRESHOLD``,
``CORALSEG_UNSURE_THRESHOLD``, ``CORALSEG_MIN_AREA``, ``CORALSEG_MIN_THICKNESS``,
``CORALSEG_NECK_RATIO``, ``CORALSEG_OVERLAP`` (sliding-window
overlap, empty for the config's) and ``CORALSEG_MODEL_DIR`` (default: the folder of
``main.py``). A library error about settings names what the deployer changes instead
(:func:`function_hint`): those variables, or the function folder's model files.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coral_core.errors import CoralsegError, setting_hint
from coral_core.formats import raster_io
from coral_core.formats.cvat_shapes import nuclio_detections
from coral_core.inference.instances import RefineSettings
from coral_core.inference.pipeline import TwoStagePredictor
from coral_core.inference.semantic import GPU_BATCH_SIZE
from nuclio_functions import SAM_WEIGHTS, SEMANTIC_CONFIG, SEMANTIC_ONNX, SEMANTIC_WEIGHTS

MODEL_DIR_ENV = "CORALSEG_MODEL_DIR"
# A 4000 x 3000 JPEG at quality 95 is about 6 MB, 8 MB in base64; these leave room for PNGs
# and larger photo-quadrats. function.yaml's maxRequestBodySize must be at least as large.
MAX_REQUEST_MIB = 64
MAX_IMAGE_PIXELS = 8192 * 8192  # beyond this, use `coralseg infer` (tiled orthomosaics)
WARMUP_SIDE = 256
# library setting -> the function.yaml variable that sets it, read as this type
REFINE_ENV: dict[str, tuple[str, type]] = {
    "min_threshold": ("CORALSEG_MIN_THRESHOLD", float),
    "unsure_threshold": ("CORALSEG_UNSURE_THRESHOLD", float),
    "min_area": ("CORALSEG_MIN_AREA", int),
    "min_thickness": ("CORALSEG_MIN_THICKNESS", float),
    "neck_ratio": ("CORALSEG_NECK_RATIO", float),
}
SETTING_ENV = {
    **{setting: name for setting, (name, _) in REFINE_ENV.items()},
    "device": "CORALSEG_DEVICE",
    "overlap": "CORALSEG_OVERLAP",
}
SETTING_FILES = {"sam_checkpoint": SAM_WEIGHTS}  # settings that are a file of the folder


def function_hint(error: BaseException) -> str:
    """How a deployer changes the settings ``error`` is about, e.g. ``" (in function.yaml's
    env, change CORALSEG_MIN_AREA)"``; ``""`` for other errors."""
    variables = setting_hint(error, SETTING_ENV.get, "in function.yaml's env, change")
    files = setting_hint(
        error, SETTING_FILES.get, "package the two-stage function, whose folder holds"
    )
    return variables + files


class BadRequestError(Exception):
    """A request the function cannot answer; ``status`` is the HTTP code (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class DetectorRequest:
    """A decoded CVAT detector request.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, EXIF orientation applied.
        threshold: the instance score cut in [0, 1], or None for none.
    """

    image: np.ndarray
    threshold: float | None


def read_request(body: Any) -> DetectorRequest:
    """Decode the body of an HTTP event (a dict when Nuclio parsed JSON, else bytes or str).

    Raises:
        BadRequestError: 400 for malformed requests, 413 for images that are too large.
    """
    payload = _json_object(body)
    encoded = payload.get("image")
    if encoded is None or encoded == "":
        raise BadRequestError(400, 'the request has no "image": send {"image": <base64 JPEG/PNG>}')
    if not isinstance(encoded, str | bytes):
        raise BadRequestError(400, '"image" must be a base64 string of a JPEG or PNG file')
    if len(encoded) > MAX_REQUEST_MIB * 2**20:
        raise BadRequestError(
            413,
            f"the image is {len(encoded) / 2**20:.0f} MiB in base64, over the "
            f"{MAX_REQUEST_MIB} MiB this function accepts; send a smaller JPEG",
        )
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError(
            400, '"image" is not valid base64 (standard alphabet, with padding)'
        ) from None
    image = decode_image(data)
    return DetectorRequest(image, _threshold(payload.get("threshold")))


def _json_object(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes | bytearray | str):
        if not body:
            raise BadRequestError(
                400, "the request body is empty: send a JSON object with an image"
            )
        try:
            body = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadRequestError(
                400, 'the request body is not JSON: send {"image": <base64>}'
            ) from None
    if not isinstance(body, dict):
        raise BadRequestError(
            400, 'the request body must be a JSON object like {"image": <base64>}'
        )
    return body


def _threshold(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequestError(400, f'"threshold" must be a number between 0 and 1, got {value!r}')
    try:
        threshold = float(value)
    except ValueError:
        raise BadRequestError(
            400, f'"threshold" must be a number between 0 and 1, got {value!r}'
        ) from None
    if not 0 <= threshold <= 1:
        raise BadRequestError(400, f'"threshold" must be between 0 and 1, got {value!r}')
    return threshold


def decode_image(data: bytes) -> np.ndarray:
    """An image file's bytes as ``(H, W, 3)`` uint8 RGB by coralseg's one decoder
    (:func:`coral_core.formats.raster_io.decode_image`: EXIF orientation, one 16-bit rule).

    Raises:
        BadRequestError: 400 when the bytes are no image, 413 when it has too many pixels.
    """
    try:
        return raster_io.decode_image(data, MAX_IMAGE_PIXELS, name='"image"')
    except raster_io.ImageTooLargeError as err:
        raise BadRequestError(413, _too_many_pixels(err.size)) from None
    except CoralsegError as err:
        raise BadRequestError(
            400, f'"image" decodes to bytes that are not a readable JPEG or PNG ({err})'
        ) from None


def _too_many_pixels(size: tuple[int, int] | None) -> str:
    side = int(math.sqrt(MAX_IMAGE_PIXELS))
    shown = "too many" if size is None else f"{size[0]} x {size[1]}"
    return (
        f"the image is {shown} pixels, over the {side} x {side} this function "
        "takes; run `coralseg infer` on larger images (orthomosaics)"
    )


def respond(context: Any, predictor: TwoStagePredictor, body: Any):
    """The whole of a detector handler: decode, predict, encode; never raises.

    Returns:
        ``context.Response``: 200 with the JSON list of detections, 4xx or 500 with a
        sentence (``text/plain``).
    """
    try:
        request = read_request(body)
    except BadRequestError as err:
        context.logger.warn_with("bad request", status=err.status, reason=err.message)
        return _text(context, err.status, err.message)
    except Exception as err:  # the worker must survive anything, a MemoryError included
        return _failure(context, "reading the request failed", err)
    try:
        result = predictor(request.image)
        detections = nuclio_detections(result, request.threshold)
        text = json.dumps(detections)
    except Exception as err:
        return _failure(context, "inference failed on this image", err)
    return context.Response(body=text, headers={}, content_type="application/json", status_code=200)


def _failure(context: Any, what: str, err: Exception):
    context.logger.error_with(what, error=repr(err), traceback=traceback.format_exc())
    return _text(
        context,
        500,
        f"{what} ({type(err).__name__}: {err}); the function's log has the traceback",
    )


def _text(context: Any, status: int, message: str):
    return context.Response(body=message, headers={}, content_type="text/plain", status_code=status)


@dataclass(frozen=True)
class FunctionSettings:
    """The deployer's knobs (see the module docstring), read from the environment."""

    model_dir: Path
    device: str
    refine: RefineSettings
    overlap: float | None

    @classmethod
    def from_env(cls, default_dir: Path, env: dict[str, str] | None = None) -> FunctionSettings:
        env = dict(os.environ if env is None else env)
        try:
            refine = RefineSettings(
                **{
                    setting: kind(env[name])
                    for setting, (name, kind) in REFINE_ENV.items()
                    if env.get(name)
                }
            )
            overlap = env.get("CORALSEG_OVERLAP") or None
            overlap = None if overlap is None else float(overlap)
        except CoralsegError as err:
            raise CoralsegError(f"function.yaml: {err}{function_hint(err)}") from None
        except ValueError as err:
            raise CoralsegError(
                f"a CORALSEG_* setting in function.yaml is not valid: {err}"
            ) from None
        return cls(
            model_dir=Path(env.get(MODEL_DIR_ENV) or default_dir),
            device=env.get("CORALSEG_DEVICE") or "cpu",
            refine=refine,
            overlap=overlap,
        )


def load_predictor(settings: FunctionSettings, with_sam: bool) -> TwoStagePredictor:
    """The packaged models of a function folder, loaded once.

    Args:
        with_sam: two-stage (needs ``vit_b_coralscop.pth``) or semantic regions only.
    """
    folder = settings.model_dir
    onnx_path = folder / SEMANTIC_ONNX
    if onnx_path.is_file():
        from nuclio_functions.onnx_semantic import load_onnx_semantic_model

        semantic = load_onnx_semantic_model(onnx_path, device=settings.device)
    elif (folder / SEMANTIC_WEIGHTS).is_file():
        from coral_core.inference.semantic import load_semantic_model

        semantic = load_semantic_model(
            folder / SEMANTIC_CONFIG, folder / SEMANTIC_WEIGHTS, device=settings.device
        )
    else:
        raise CoralsegError(
            f"{folder} holds neither {SEMANTIC_ONNX} nor {SEMANTIC_WEIGHTS}; build the "
            "function with `coralseg package-nuclio`"
        )
    if settings.overlap is not None:
        from coral_core.inference.semantic import with_overlap

        semantic = with_overlap(semantic, settings.overlap)
    sam = None
    if with_sam:
        from coral_core.inference.sam_models import load_sam_runner

        sam_path = folder / SAM_WEIGHTS
        if not sam_path.is_file():
            raise CoralsegError(f"{folder} has no {SAM_WEIGHTS}; the two-stage function needs it")
        sam = load_sam_runner(sam_path, settings.device, settings.refine.prompts_per_batch)
    # An ONNX model assembles its windows on the CPU whatever runs its graph: batch for the
    # device that does (a torch model on a GPU gets the same by default).
    batch_size = GPU_BATCH_SIZE if settings.device.startswith("cuda") else None
    return TwoStagePredictor(semantic, sam, settings.refine, batch_size)


def warm_up(predictor: TwoStagePredictor) -> None:
    """One prediction on a small synthetic image, so the first real request is not slower."""
    rng = np.random.default_rng(0)
    predictor(rng.integers(0, 256, (WARMUP_SIDE, WARMUP_SIDE, 3), dtype=np.uint8))


def init_function(context: Any, main_file: str, with_sam: bool) -> None:
    """``init_context`` of a function: load and warm up its models into ``context.user_data``.

    Raises:
        CoralsegError: the function cannot start; the sentence (in the function's log) says
            what the deployer changes (:func:`function_hint`).
    """
    settings = FunctionSettings.from_env(Path(main_file).resolve().parent)
    context.logger.info_with(
        "loading coralseg models",
        model_dir=str(settings.model_dir),
        device=settings.device,
        two_stage=with_sam,
    )
    try:
        predictor = load_predictor(settings, with_sam)
        warm_up(predictor)  # also where a model its settings cannot serve is found
    except CoralsegError as err:
        raise CoralsegError(f"{err}{function_hint(err)}") from None
    context.user_data.predictor = predictor
    context.logger.info_with("coralseg models ready", labels=len(predictor.encoding.label_names))
