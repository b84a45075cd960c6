"""From one frame's inference result to the shapes the bridge uploads, and the fingerprint
that recognises them in CVAT afterwards.

The shapes themselves come from :func:`coral_core.formats.cvat_shapes.cvat_shapes` (shared with the
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
    from coral_core.formats.cvat_shapes import cvat_shapes

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
