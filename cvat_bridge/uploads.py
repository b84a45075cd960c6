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
from collections.abc import Iterable
from dataclasses import dataclass

SOURCE_AUTO = "auto"


@dataclass(frozen=True)
class FrameShapes:
    """The shapes to upload for one frame, and the labels the job lacks."""

    frame: int
    shapes: list[dict]
    missing_labels: frozenset[str]


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
