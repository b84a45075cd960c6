"""From one frame's inference result to the shapes the bridge uploads, and the fingerprint
that recognises them in CVAT afterwards.

The shapes themselves come from :func:`coral_core.cvat_shapes.cvat_shapes` (shared with the
Nuclio function); here they only get the job's label ids, the frame number and
``source: "auto"``. A fingerprint is the frame, label, type, points (rounded) and attribute
values. It serves three ends: if a worker dies after CVAT created a batch but before the
bridge recorded it, the resumed run finds the batch by fingerprint instead of uploading it
twice (:func:`landed`); a rerun deletes only the model's shapes that still look as uploaded
(:func:`untouched`); and a shape already in CVAT exactly as the model would upload it is not
uploaded again, even when the bridge's records were lost (:func:`already_in_cvat`).
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
    """``{frame}|<hash>`` of a shape's frame, label, type, points (to 1/100 pixel) and
    attribute values: what a person's edit of any of them changes."""
    points = ",".join(f"{float(p):.2f}" for p in shape["points"])
    attributes = sorted((int(a["spec_id"]), str(a["value"])) for a in shape.get("attributes") or [])
    text = f"{int(shape['label_id'])}|{shape['type']}|{points}|{attributes}"
    return f"{int(shape['frame'])}|{hashlib.sha1(text.encode()).hexdigest()}"


def untouched(
    ledger: dict[int, int], prints: dict[int, set[str]], cvat_shapes: Iterable[dict]
) -> tuple[list[dict], list[int]]:
    """Split the model's earlier shapes (``ledger``: id -> frame) by what CVAT holds now:
    those still exactly as uploaded (``source: auto`` and a fingerprint of the frame's
    upload; only the source where the ledger has no fingerprints for the frame), which a
    rerun may delete, and the ids of the others (edited in any way, or deleted by a
    person), which are no longer the model's."""
    current = {int(s["id"]): s for s in cvat_shapes}
    deletable, forgotten = [], []
    for shape_id, frame in ledger.items():
        shape = current.get(shape_id)
        same = shape is not None and shape.get("source") == SOURCE_AUTO
        if same and frame in prints:
            same = fingerprint(shape) in prints[frame]
        if same:
            deletable.append(shape)
        else:
            forgotten.append(shape_id)
    return deletable, forgotten


def already_in_cvat(
    new: list[dict], cvat_shapes: Iterable[dict], known: set[int]
) -> tuple[list[dict], dict[int, int]]:
    """The shapes of ``new`` that CVAT does not hold yet, and the ``id -> frame`` of those
    it does: ``source: auto`` shapes unknown to the ledger that look exactly like one of
    ``new`` (a lost ledger, or a run repeated after its records were lost). Uploading those
    again would double them."""
    unknown: dict[str, list[dict]] = {}
    for shape in cvat_shapes:
        if shape.get("source") == SOURCE_AUTO and int(shape["id"]) not in known:
            unknown.setdefault(fingerprint(shape), []).append(shape)
    to_create, found = [], {}
    for shape in new:
        twins = unknown.get(fingerprint(shape))
        if twins:
            twin = twins.pop()
            found[int(twin["id"])] = int(twin["frame"])
        else:
            to_create.append(shape)
    return to_create, found


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
