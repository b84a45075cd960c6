"""cvat_bridge.annotate on its own: one Annotator call on one run, against the fake CVAT
through cvat-sdk, with the embedded records and queue -- what it does with a run it cannot
claim, a job no longer for the model, a job gone from CVAT, data not ready (a growing delay,
then giving up), the time limit, a frame CVAT refuses, a run already complete, and an
interrupted upload adopted on resume instead of uploaded twice; and the rule that leaves out
the colonies a person's shapes cover. (Whole runs through the web service and workers are in
the scenario files.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cvat_bridge.annotate import MAX_ATTEMPTS, Annotator, _clear_of_people
from cvat_bridge.events import JobEvent
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState, ModelChoice
from cvat_bridge.storage import open_storage
from cvat_bridge.uploads import fingerprint
from tests.cvat_bridge.harness import MODEL, bridge_settings, make_job
from tests.fake_cvat import FakeCvatServer


class Setup:
    """An Annotator over the fake CVAT, with its records, queue and settings."""

    def __init__(self, settings: BridgeSettings, registry: ModelRegistry) -> None:
        self.settings = settings
        store, self.queue = open_storage(settings, 5.0)
        self.state = BridgeState(store)
        self.registry = registry
        self.stop = threading.Event()

    def annotator(self, **changes) -> Annotator:
        settings = replace(self.settings, **changes)
        return Annotator(settings, self.state, self.registry, self.queue, "w-test", self.stop)

    def run_of(self, job, task, second: int = 0) -> str:
        event = JobEvent("update:job", job.id, task.id, task.project_id, "in progress",
                         "annotation", "annotation", f"2026-05-01T10:00:{second:02d}Z")  # fmt: skip
        spec = self.registry.spec(MODEL)
        return self.state.observe(event, ModelChoice(MODEL, spec.version, True)).run_id


@pytest.fixture
def setup(
    cvat: FakeCvatServer, registry_file: Path, loaded_models: ModelRegistry, tmp_path: Path
) -> Iterator[Setup]:
    registry = ModelRegistry.from_file(registry_file)
    registry._predictors = loaded_models._predictors  # the session's loaded model
    yield Setup(bridge_settings(cvat.url, registry_file, tmp_path / "cache"), registry)


def requests_since(cvat: FakeCvatServer, start: int) -> list:
    return cvat.state.requests[start:]


def test_a_run_that_cannot_be_claimed_touches_nothing(
    setup: Setup, cvat: FakeCvatServer, colony_labels
) -> None:
    _, task, job = make_job(cvat.state, colony_labels, frames=1)
    run_id = setup.run_of(job, task)
    setup.state.claim(run_id, "someone-else", lease=600)
    held = setup.state.run(run_id)
    before = len(cvat.state.requests)
    setup.annotator()(run_id)
    setup.annotator()("no-such-run")
    assert setup.state.run(run_id) == held
    assert requests_since(cvat, before) == [] and setup.queue.size() == 0


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"type": "ground_truth"}, "job {job} is a ground_truth job"),
        ({"stage": "validation"}, "job {job} is now in stage 'validation'; model 'tiny-coral' "
                                  "pre-annotates annotation (its registry entry's stages)"),
    ],
)  # fmt: skip
def test_a_job_no_longer_for_the_model_is_done_with_why(
    setup: Setup, cvat: FakeCvatServer, colony_labels, change: dict, said: str
) -> None:
    _, task, job = make_job(cvat.state, colony_labels, frames=2)
    run_id = setup.run_of(job, task)
    with cvat.state.lock:
        for field, value in change.items():
            setattr(job, field, value)
    setup.annotator()(run_id)
    run = setup.state.run(run_id)
    assert run["status"] == "done" and run["errors"] == [said.format(job=job.id)]
    assert run["frames_total"] is None and task.shapes == []


def test_a_job_gone_from_cvat_fails_with_cvats_answer(setup: Setup, cvat: FakeCvatServer) -> None:
    event = JobEvent("update:job", 999, 1, 1, "in progress", "annotation", "annotation",
                     "2026-05-01T10:00:00Z")  # fmt: skip
    run_id = setup.state.observe(event, ModelChoice(MODEL, "1", True)).run_id
    setup.annotator()(run_id)
    run = setup.state.run(run_id)
    assert run["status"] == "failed"
    assert run["errors"] == ["CVAT refused to read job 999: HTTP 404 Not Found"]
    assert setup.state.open_runs() == []


def test_data_not_ready_is_tried_later_then_given_up(
    setup: Setup, cvat: FakeCvatServer, colony_labels
) -> None:
    _, task, job = make_job(cvat.state, colony_labels, frames=2)
    task.data_ready = False
    run_id = setup.run_of(job, task)
    annotator = setup.annotator(retry_base_delay=0.05)  # first delay: 20 x 0.05 = 1 s
    annotator(run_id)
    run = setup.state.run(run_id)
    assert (run["status"], run["owner"], run["attempts"]) == ("queued", None, 1)
    assert run["errors"] == [f"the frames of task {task.id} are not ready yet; next attempt in 1 s"]
    (message,) = setup.queue.huey.pending()  # sent again, to run no earlier than in 1 s
    assert message.args == (run_id,) and message.eta is not None
    annotator(run_id)  # the delayed message arrived: still not ready, the delay doubles
    assert setup.state.run(run_id)["errors"][-1].endswith("next attempt in 2 s")

    def give_up_next(txn) -> None:
        txn.set(f"run:{run_id}", {**txn.get(f"run:{run_id}"), "attempts": MAX_ATTEMPTS - 1})

    setup.state.store.atomically(give_up_next)
    annotator(run_id)
    run = setup.state.run(run_id)
    assert run["status"] == "failed" and run["attempts"] == MAX_ATTEMPTS
    assert run["errors"][-1] == (
        f"the frames of task {task.id} are not ready yet; gave up after {MAX_ATTEMPTS} attempts"
    )


def test_a_run_past_its_time_limit_fails_before_any_frame(
    setup: Setup, cvat: FakeCvatServer, colony_labels
) -> None:
    _, task, job = make_job(cvat.state, colony_labels, frames=2)
    run_id = setup.run_of(job, task)
    before = len(cvat.state.requests)
    setup.annotator(auto_ann_timeout=0.0)(run_id)
    run = setup.state.run(run_id)
    assert run["status"] == "failed" and run["frames_done"] == []
    assert run["errors"][-1] == (
        "the run took longer than AUTO_ANN_TIMEOUT (0 s); raise it for jobs this large"
    )
    downloads = [r for r in requests_since(cvat, before) if "type=frame" in r.query]
    assert downloads == [] and task.shapes == []


def test_a_frame_cvat_refuses_is_failed_and_the_run_done(
    setup: Setup, cvat: FakeCvatServer, colony_labels
) -> None:
    _, task, job = make_job(cvat.state, colony_labels, frames=1)
    cvat.state.add_fault("GET", rf"/api/jobs/{job.id}/data$", status=403)
    run_id = setup.run_of(job, task)
    setup.annotator()(run_id)
    run = setup.state.run(run_id)
    assert run["status"] == "done" and run["frames_done"] == []
    assert run["frames_failed"] == {
        "0": f"CVAT refused to download frame 0 of job {job.id}: HTTP 403 Forbidden"
    }
    assert task.shapes == []


def test_a_run_with_every_frame_done_downloads_nothing(
    setup: Setup, cvat: FakeCvatServer, colony_labels
) -> None:
    _, task, job = make_job(cvat.state, colony_labels, frames=3)
    run_id = setup.run_of(job, task)
    setup.state.claim(run_id, "w-old", lease=600)
    setup.state.commit_batch(run_id, "w-old", [0, 1], {}, removed=[])
    setup.state.fail_frame(run_id, "w-old", 2, "the frame is not a readable image")
    setup.state.release(run_id, "w-old")
    before = len(cvat.state.requests)
    setup.annotator()(run_id)
    run = setup.state.run(run_id)
    assert (run["status"], run["frames_total"], run["attempts"]) == ("done", 3, 2)
    sent = requests_since(cvat, before)
    assert not [r for r in sent if "type=frame" in r.query or r.method == "PATCH"]


def test_an_interrupted_upload_is_adopted_not_uploaded_again(
    setup: Setup, cvat: FakeCvatServer, colony_labels
) -> None:
    """A worker died after CVAT created its batch and before it recorded it: the next
    attempt finds the batch by fingerprint, records it, and neither downloads nor uploads
    those frames again."""
    state = cvat.state
    _, task, job = make_job(state, colony_labels, frames=2)
    label = colony_labels[0]
    landed = [
        state.add_shape(task, frame, label, "polygon", [2, 2, 20, 2, 20, 15], source="auto")
        for frame in (0, 1)
    ]
    label_id = landed[0].label_id
    prints = [
        fingerprint({"frame": s.frame, "label_id": label_id, "type": "polygon",
                     "points": s.points, "attributes": []})
        for s in landed
    ]  # fmt: skip
    run_id = setup.run_of(job, task)
    setup.state.claim(run_id, "w-dead", lease=0.0)  # its lease ends at once: it died
    setup.state.begin_batch(run_id, "w-dead", [0, 1], prints)
    before = len(state.requests)
    setup.annotator()(run_id)
    run = setup.state.run(run_id)
    assert (run["status"], run["frames_done"], run["shapes_written"]) == ("done", [0, 1], 2)
    assert run["pending"] is None
    assert setup.state.ledger(job.id, MODEL) == {landed[0].id: 0, landed[1].id: 1}
    assert len(task.shapes) == 2  # nothing uploaded twice
    sent = requests_since(cvat, before)
    assert not [r for r in sent if "type=frame" in r.query or r.method == "PATCH"]


def _square(frame: int, x: int, y: int, size: int, source: str = "auto") -> dict:
    right, bottom = x + size, y + size
    return {"type": "polygon", "frame": frame, "source": source,
            "points": [x, y, right, y, right, bottom, x, bottom]}  # fmt: skip


def test_colonies_a_persons_shapes_cover_are_left_out() -> None:
    person = [
        _square(0, 0, 0, 20, source="manual"),
        {"type": "points", "frame": 0, "points": [50, 50], "source": "manual"},  # no area
    ]
    predicted = [
        _square(0, 5, 5, 10),  # inside the person's square: theirs
        _square(0, 15, 15, 10),  # a quarter of it under the person's: kept
        _square(0, 48, 48, 5),  # around the person's point: points have no area, kept
        _square(1, 5, 5, 10),  # the same place on another frame: kept
    ]
    kept, skipped = _clear_of_people(predicted, person)
    assert skipped == 1 and kept == predicted[1:]
    assert _clear_of_people(predicted, []) == (predicted, 0)
    assert _clear_of_people([], person) == ([], 0)
