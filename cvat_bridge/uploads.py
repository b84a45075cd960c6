"""From one frame's inference result to the shapes the bridge uploads, and the fingerprint
that recognises them in CVAT afterwards.

The shapes themselves come from :func:`coral_core.cvat_shapes.cvat_shapes` (shared with the
Nuclio function); here they only get the job's label ids, the frame number and
``source: "auto"``. A fingerprint is the frame, label, type and points (rounded): if a
worker dies after CVAT created a batch but before the bridge recorded it, the resumed run
finds the batch by fingerprint instead of uploading it twice.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from coral_core.errors import CoralsegError

SOURCE_AUTO = "auto"
MAX_FRAME_PIXELS = 200_000_000


class FrameError(CoralsegError):
    """A frame the model cannot read (corrupt, empty, too large)."""


@dataclass(frozen=True)
class FrameShapes:
    """The shapes to upload for one frame, and the labels the job lacks."""

    frame: int
    shapes: list[dict]
    missing_labels: frozenset[str]


def decode_frame(data: bytes, max_pixels: int = MAX_FRAME_PIXELS) -> np.ndarray:
    """An image file's bytes as an ``(H, W, 3)`` uint8 RGB array, EXIF orientation applied
    (as CVAT shows the frame)."""
    if not data:
        raise FrameError("the frame is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise FrameError(
                    f"the frame is {image.width}x{image.height} pixels, more than the "
                    f"{max_pixels} the bridge reads"
                )
            image = ImageOps.exif_transpose(image)
            if image.mode == "I;16" or image.mode == "I":
                array = np.asarray(image, dtype=np.float64)
                peak = max(float(array.max()), 1.0)
                return np.repeat((array * (255.0 / peak)).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except FrameError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise FrameError(f"the frame is not a readable image ({err})") from None


def frame_shapes(
    result, frame: int, labels: dict[str, int], conv_mask_to_poly: bool, threshold: float | None
) -> FrameShapes:
    """CVAT shape dicts for ``result`` (a ``TwoStageResult``) on ``frame``."""
    from coral_core.cvat_shapes import cvat_shapes

    shapes, missing = [], set()
    for shape in cvat_shapes(result, conv_mask_to_poly=conv_mask_to_poly, threshold=threshold):
        label_id = labels.get(shape.label)
        if label_id is None:
            missing.add(shape.label)
            continue
        shapes.append(
            {
                "type": shape.type,
                "frame": frame,
                "label_id": label_id,
                "points": [float(p) for p in shape.points],
                "source": SOURCE_AUTO,
                "score": round(float(shape.score), 4),
                "occluded": False,
                "z_order": 0,
                "group": 0,
                "attributes": [],
            }
        )
    return FrameShapes(frame, shapes, frozenset(missing))


def fingerprint(shape: dict) -> str:
    """Frame, label, type and points (to 1/100 pixel) of a shape, hashed."""
    points = ",".join(f"{float(p):.2f}" for p in shape["points"])
    text = f"{int(shape['frame'])}|{int(shape['label_id'])}|{shape['type']}|{points}"
    return hashlib.sha1(text.encode()).hexdigest()


def landed(
    cvat_shapes: Iterable[dict], frames: Iterable[int], fingerprints: Iterable[str], known: set[int]
) -> dict[int, int]:
    """Shapes in CVAT (``id -> frame``) that an interrupted upload created: on ``frames``,
    ``source: auto``, not already ``known``, with a fingerprint of the upload."""
    frames, wanted = set(frames), set(fingerprints)
    return {
        int(s["id"]): int(s["frame"])
        for s in cvat_shapes
        if int(s["frame"]) in frames
        and s.get("source") == SOURCE_AUTO
        and int(s["id"]) not in known
        and fingerprint(s) in wanted
    }
