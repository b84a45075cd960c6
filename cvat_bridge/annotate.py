"""One run: pre-annotate a CVAT job with a model, frame by frame, resumably.

1. Claim the run (a lease, renewed by a heartbeat thread); a run someone else holds, or
   one already finished, is skipped.
2. Read the job: a job of another type, or in a stage the model does not pre-annotate, is
   left alone; a job whose task is still being created is tried again later. Read its
   frames (deleted ones and honeypots left out: model output on a validation-pool frame
   would contaminate CVAT's quality control), its labels and its shapes. If a previous
   attempt died in the middle of an upload, find what it created (by fingerprint) and
   record it, so nothing is uploaded twice.
3. For each frame not yet done: download it (the original quality), decode it with
   coralseg's one decoder (:func:`coral_core.formats.raster_io.decode_image`), run the model,
   convert to shapes. A frame that cannot be read or that the model fails on is recorded
   as failed; the others go on.
4. Every ``upload_batch_frames`` frames: delete the shapes this model wrote before on
   those frames that CVAT still holds exactly as uploaded (:func:`.uploads.untouched`: a
   person's edit of points, label or an attribute keeps a shape, and "manual" shapes are
   never touched), leave out the colonies that overlap a shape a person drew on that frame
   (:data:`~coral_core.formats.cvat_shapes.PERSON_OVERLAP` of the smaller one; counted in the run's
   ``shapes_skipped``), create the others that CVAT does not already hold
   (:func:`.uploads.already_in_cvat`), record both. CVAT's shapes are read once per batch,
   as late as possible: just before the delete.
5. Finish: ``done`` (with failed frames listed) or ``failed`` with a sentence. If CVAT is
   out of reach, the run goes back to the queue for a later attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from coral_core.errors import CoralsegError
from coral_core.formats.cvat_shapes import (
    PERSON_OVERLAP,
    label_accepts,
    overlap_of_smaller,
    shape_region,
)
from coral_core.formats.raster_io import decode_image
from cvat_bridge.cvat_io import (
    CvatRefusedError,
    CvatSession,
    CvatUnavailableError,
    DataNotReadyError,
    is_transient,
)
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry, entry_hint
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import DONE, FAILED, BridgeState, LostRunError
from cvat_bridge.uploads import (
    FrameShapes,
    already_in_cvat,
    fingerprint,
    frame_shapes,
    landed,
    untouched,
)

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
MAX_FRAME_PIXELS = 200_000_000
PERSON_SOURCES = ("manual", "semi-auto")  # shapes a person drew, or edited after a model


class StopRequestedError(Exception):
    """The worker is shutting down: give the run back to the queue."""


class RunTimeoutError(CoralsegError):
    """The run took longer than AUTO_ANN_TIMEOUT."""


class Annotator:
    """Executes runs for one worker (``owner``); called by the queue with a run id."""

    def __init__(
        self,
        settings: BridgeSettings,
        state: BridgeState,
        registry: ModelRegistry,
        queue: BridgeQueue,
        owner: str,
        stop: threading.Event,
        session_factory: Callable[..., CvatSession] = CvatSession,
    ) -> None:
        self.settings = settings
        self.state = state
        self.registry = registry
        self.queue = queue
        self.owner = owner
        self.stop = stop
        self.session_factory = session_factory

    def __call__(self, run_id: str) -> None:
        run = self.state.claim(run_id, self.owner, self.settings.run_lease)
        if run is None:
            log.info("run %s is not claimable (done, or held by another worker)", run_id)
            return
        log.info("run %s: job %s, model %s", run_id, run["job_id"], run["model_name"])
        lost = threading.Event()
        beating = threading.Event()
        heart = threading.Thread(
            target=self._heartbeat, args=(run_id, lost, beating), daemon=True, name="heartbeat"
        )
        heart.start()
        try:
            _Run(self, run, lost).execute()
            self.state.finish(run_id, self.owner, DONE)
            log.info("run %s done", run_id)
        except LostRunError:
            log.warning("run %s was taken over by another worker; stopping here", run_id)
        except StopRequestedError:
            self.state.release(run_id, self.owner)
            self.queue.enqueue(run_id)
            log.info("run %s given back to the queue (worker stopping)", run_id)
        except DataNotReadyError as err:
            self._retry_later(run, str(err), first_delay=20 * self.settings.retry_base_delay)
        except CvatUnavailableError as err:
            self._retry_later(run, str(err))
        except (CoralsegError, CvatRefusedError) as err:
            error = f"{err}{entry_hint(err, run['model_name'])}"
            self.state.finish(run_id, self.owner, FAILED, error)
            log.warning("run %s failed: %s", run_id, err)
        except Exception as err:
            log.exception("run %s failed unexpectedly", run_id)
            self.state.finish(run_id, self.owner, FAILED, f"unexpected error: {err!r}")
        finally:
            beating.set()
            heart.join()

    def _retry_later(self, run: dict, error: str, first_delay: float = 30.0) -> None:
        run_id = run["run_id"]
        if run["attempts"] >= MAX_ATTEMPTS:
            self.state.finish(
                run_id, self.owner, FAILED, f"{error}; gave up after {MAX_ATTEMPTS} attempts"
            )
            log.warning("run %s failed for good: %s", run_id, error)
            return
        delay = min(3600.0, first_delay * 2 ** (run["attempts"] - 1))
        self.state.release(run_id, self.owner, f"{error}; next attempt in {delay:.0f} s")
        self.queue.enqueue(run_id, delay=delay)
        log.warning("run %s: %s; retrying in %.0f s", run_id, error, delay)

    def _heartbeat(self, run_id: str, lost: threading.Event, done: threading.Event) -> None:
        interval = max(0.2, self.settings.run_lease / 3)
        while not done.wait(interval):
            try:
                self.state.heartbeat(run_id, self.owner, self.settings.run_lease)
            except LostRunError:
                lost.set()
                return
            except Exception:  # a store hiccup: the lease has slack for the next beat
                log.warning("heartbeat of run %s failed", run_id, exc_info=True)


class _Run:
    def __init__(self, annotator: Annotator, run: dict, lost: threading.Event) -> None:
        self.a = annotator
        self.run = run
        self.lost = lost
        self.run_id = run["run_id"]
        self.job_id = run["job_id"]
        self.deadline = time.monotonic() + annotator.settings.auto_ann_timeout

    @property
    def state(self) -> BridgeState:
        return self.a.state

    def check(self) -> None:
        if self.lost.is_set():
            raise LostRunError(self.run_id)
        if self.a.stop.is_set():
            raise StopRequestedError
        if time.monotonic() > self.deadline:
            raise RunTimeoutError(
                f"the run took longer than AUTO_ANN_TIMEOUT ({self.a.settings.auto_ann_timeout:.0f}"
                " s); raise it for jobs this large"
            )

    def execute(self) -> None:
        spec = self.a.registry.spec(self.run["model_name"])
        owner = self.a.owner
        with self.a.session_factory(self.a.settings, self.a.stop) as cvat:
            self.cvat = cvat
            job = cvat.job(self.job_id)
            if str(job.type) != "annotation":
                self.state.add_error(self.run_id, owner, f"job {self.job_id} is a {job.type} job")
                return
            if str(job.stage) not in spec.stages:
                self.state.add_error(
                    self.run_id,
                    owner,
                    f"job {self.job_id} is now in stage {job.stage!r}; model {spec.name!r} "
                    f"pre-annotates {', '.join(spec.stages)} (its registry entry's stages)",
                )
                return
            frames = cvat.frames(job)
            honeypots = cvat.honeypot_frames(self.job_id) & set(frames)
            if honeypots and not self.run["frames_done"]:
                self.state.add_error(
                    self.run_id,
                    owner,
                    f"{len(honeypots)} honeypot frame(s) of the validation pool left out: "
                    "model output there would spoil CVAT's quality control",
                )
            frames = [f for f in frames if f not in honeypots]
            self.state.set_total(self.run_id, owner, len(frames))
            self.labels = self._usable_labels(cvat.labels(self.job_id))
            if self.run["pending"]:
                self._resolve_pending(self.run["pending"])
            run = self.state.run(self.run_id)
            finished = set(run["frames_done"]) | {int(f) for f in run["frames_failed"]}
            todo = [f for f in frames if f not in finished]
            if not todo:
                return
            predictor = self.a.registry.predictor(spec.name)
            missing: set[str] = set()
            batch: list[FrameShapes] = []
            for frame in todo:
                self.check()
                shapes = self._infer(frame, predictor, spec.score_threshold)
                if shapes is None:
                    continue
                new_missing = shapes.missing_labels - missing
                if new_missing:
                    missing |= new_missing
                    self.state.add_error(self.run_id, owner, self._missing(new_missing))
                batch.append(shapes)
                if len(batch) >= self.a.settings.upload_batch_frames:
                    self._upload(batch)
                    batch = []
            if batch:
                self._upload(batch)

    def _usable_labels(self, labels: dict) -> dict[str, int]:
        """Name -> id of the job's labels that take colonies; the others are reported."""
        usable = {name: label.id for name, label in labels.items() if label_accepts(label.type)}
        refused = sorted(f"{name} ({labels[name].type})" for name in set(labels) - set(usable))
        self.refused_labels = {name for name in labels if name not in usable}
        if refused:
            log.info("run %s: labels that take no colonies: %s", self.run_id, ", ".join(refused))
        return usable

    def _infer(self, frame: int, predictor, threshold: float | None) -> FrameShapes | None:
        try:
            data = self.cvat.frame_bytes(self.job_id, frame)
        except CvatRefusedError as err:
            self.state.fail_frame(self.run_id, self.a.owner, frame, str(err))
            return None
        try:
            image = decode_image(data, MAX_FRAME_PIXELS, name=f"frame {frame}")
        except CoralsegError as err:
            self.state.fail_frame(
                self.run_id, self.a.owner, frame, f"the frame is not a readable image: {err}"
            )
            return None
        try:
            result = predictor(image)
            return frame_shapes(
                result, frame, self.labels, self.run["conv_mask_to_poly"], threshold
            )
        except CoralsegError as err:
            error = f"{err}{entry_hint(err, self.run['model_name'])}"
        except Exception as err:  # a model failure on one frame must not stop the job
            log.exception("run %s: frame %d failed", self.run_id, frame)
            error = f"the model failed on this frame: {err!r}"
        self.state.fail_frame(self.run_id, self.a.owner, frame, error)
        return None

    def _missing(self, names: set[str]) -> str:
        wrong_type = sorted(names & self.refused_labels)
        absent = sorted(names - self.refused_labels)
        parts = []
        if absent:
            parts.append(
                f"the job has no label(s) {', '.join(absent)}: add them to the CVAT project "
                "to receive these colonies"
            )
        if wrong_type:
            parts.append(
                f"label(s) {', '.join(wrong_type)} have a type that takes no colonies: give "
                "them the type mask, polygon or any in the CVAT project"
            )
        return "; ".join(parts)

    def _resolve_pending(self, pending: dict) -> None:
        """A previous attempt died during an upload: adopt what it created, if anything."""
        ledger = self.state.ledger(self.job_id, self.run["model_name"])
        found = landed(
            self.cvat.shapes(self.job_id), pending["frames"], pending["fingerprints"], set(ledger)
        )
        if found:
            self.state.commit_batch(self.run_id, self.a.owner, pending["frames"], found, removed=[])
            log.info("run %s: adopted %d shapes of an interrupted upload", self.run_id, len(found))

    def _upload(self, batch: list[FrameShapes]) -> None:
        """Replace this model's earlier shapes on the batch's frames by the new ones."""
        owner, model = self.a.owner, self.run["model_name"]
        frames = [item.frame for item in batch]
        self.check()
        ledger = self.state.ledger(self.job_id, model)
        prints_now = self.state.ledger_prints(self.job_id, model)
        earlier = {i: frame for i, frame in ledger.items() if frame in set(frames)}
        # read as late as possible: a person's shape or edit saved before this read is seen
        # and kept (between it and the delete there is only the pending record's write)
        current = self.cvat.shapes(self.job_id)
        stale, forgotten = untouched(earlier, prints_now, current)
        # a person's shapes: drawn, edited (semi-auto), or the model's with only an
        # attribute changed (still "auto", but kept as theirs)
        kept = set(forgotten)
        new, skipped = _clear_of_people(
            [shape for item in batch for shape in item.shapes],
            [s for s in current if s.get("source") in PERSON_SOURCES or int(s["id"]) in kept],
        )
        prints = [fingerprint(shape) for shape in new]
        self.state.begin_batch(self.run_id, owner, frames, prints)
        removed: list[int] = []
        if stale:
            self.cvat.delete_shapes(self.job_id, stale)
            removed = [int(s["id"]) for s in stale]
        to_create, created = already_in_cvat(new, current, set(ledger))
        if to_create:
            created |= self._create(to_create, frames, prints, set(ledger) | set(created))
        self.state.commit_batch(
            self.run_id, owner, frames, created, removed, forgotten, skipped=skipped
        )

    def _create(
        self, shapes: list[dict], frames: list[int], prints: list[str], known: set[int]
    ) -> dict[int, int]:
        """Create ``shapes`` exactly once: after a failed attempt, look before trying again."""
        settings = self.a.settings
        for attempt in range(settings.cvat_retries + 1):
            try:
                created = self.cvat.create_shapes_once(self.job_id, shapes)
                return {int(s["id"]): int(s["frame"]) for s in created}
            except Exception as err:
                if not is_transient(err):
                    raise CvatRefusedError(
                        f"CVAT refused the shapes of frames {frames}: {err}",
                        getattr(err, "status", 0),
                    ) from None
                log.warning("run %s: upload failed (%s); checking what landed", self.run_id, err)
            if self.a.stop.wait(min(30.0, settings.retry_base_delay * 2**attempt)):
                raise StopRequestedError
            found = landed(self.cvat.shapes(self.job_id), frames, prints, known)
            if found:
                return found
        raise CvatUnavailableError(f"CVAT kept failing to take the shapes of frames {frames}")


def _clear_of_people(predicted: list[dict], people: list[dict]) -> tuple[list[dict], int]:
    """The predicted shapes that overlap no shape a person drew on their frame (by
    :data:`PERSON_OVERLAP` of the smaller one), and how many were left out."""
    regions: dict[int, list] = {}
    for shape in people:
        region = shape_region(shape["type"], shape["points"])
        if region is not None:
            regions.setdefault(int(shape["frame"]), []).append(region)
    kept = []
    for shape in predicted:
        theirs = regions.get(int(shape["frame"]), [])
        region = shape_region(shape["type"], shape["points"]) if theirs else None
        if region is not None and any(
            overlap_of_smaller(region, other) >= PERSON_OVERLAP for other in theirs
        ):
            continue
        kept.append(shape)
    return kept, len(predicted) - len(kept)
