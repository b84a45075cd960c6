"""The ledger: which shapes in CVAT a model wrote in a job, and what they looked like then.

``ledger:{job}:{model}`` is ``{"shapes": {shape id: frame}, "prints": {frame: [fingerprint,
...]}}``: the ids CVAT gave the model's shapes, and the fingerprints (:func:`.uploads.
fingerprint`: frame, label, type, points, attributes) of what the model uploaded on each
frame. A rerun deletes a ledger shape only if CVAT still holds it exactly as uploaded
(``source: "auto"`` and a recorded fingerprint): a person's edit of its points or label
(which also turns the source into "semi-auto") or of an attribute alone (which keeps
``source: "auto"`` in cvat-core) keeps it. An older ledger of bare ``{shape id: frame}``
(no fingerprints) is read as shapes whose looks were not recorded: only the source decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cvat_bridge.kv import Store, Txn


def _key(job_id: int, model_name: str) -> str:
    return f"ledger:{job_id}:{model_name}"


def _read(raw: dict | None) -> tuple[dict[str, int], dict[str, list[str]]]:
    if not raw:
        return {}, {}
    if "shapes" in raw and isinstance(raw["shapes"], dict):
        return dict(raw["shapes"]), {k: list(v) for k, v in raw.get("prints", {}).items()}
    return {k: int(v) for k, v in raw.items()}, {}


def update_ledger(
    txn: Txn,
    job_id: int,
    model_name: str,
    created: dict[int, int],
    gone: Iterable[int],
    prints: Iterable[str],
) -> None:
    """``created`` shape ids (-> frame) join the ledger with the upload's fingerprints;
    ``gone`` ids (deleted, or no longer the model's) leave it."""
    shapes, known_prints = _read(txn.get(_key(job_id, model_name)))
    for shape_id in gone:
        shapes.pop(str(shape_id), None)
    shapes.update({str(i): int(frame) for i, frame in created.items()})
    frames_now = {str(frame) for frame in created.values()}
    uploaded = list(prints)
    for frame in frames_now:
        # the frame's fingerprints are those of its latest upload: only its shapes remain
        known_prints[frame] = sorted({p for p in uploaded if p.startswith(f"{frame}|")})
    live_frames = {str(frame) for frame in shapes.values()}
    known_prints = {f: p for f, p in known_prints.items() if f in live_frames}
    txn.set(_key(job_id, model_name), {"shapes": shapes, "prints": known_prints})


def forget_ledger(txn: Txn, job_id: int, model_name: str) -> None:
    txn.delete(_key(job_id, model_name))


class LedgerRecords:
    store: Store
    clock: Callable[[], float]

    def ledger(self, job_id: int, model_name: str) -> dict[int, int]:
        """``{shape id: frame}`` of the model's shapes in the job."""
        shapes, _ = _read(self.store.get(_key(job_id, model_name)))
        return {int(k): int(v) for k, v in shapes.items()}

    def ledger_prints(self, job_id: int, model_name: str) -> dict[int, set[str]]:
        """``{frame: fingerprints}`` of what the model uploaded; frames of an older ledger
        without fingerprints are absent."""
        _, prints = _read(self.store.get(_key(job_id, model_name)))
        return {int(frame): set(found) for frame, found in prints.items()}
