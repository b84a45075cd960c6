"""cvat_bridge.reconcile on its own: ``CORALSEG_WATCH_PROJECTS`` read strictly, and one
reconciliation pass over the fake CVAT (through cvat-sdk) with the embedded records and
queue: unseen new jobs count as created, jobs that went in progress while nobody listened
start a run, the rest and a second pass change nothing, a subscription wins over the
watched entry, and a model the registry lacks is skipped."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from cvat_bridge.events import JobEvent
from cvat_bridge.reconcile import reconcile, watched_projects
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.state import BridgeState, ModelChoice
from cvat_bridge.storage import open_storage
from tests.cvat_bridge.harness import MODEL, bridge_settings, make_job
from tests.fake_cvat import FakeCvatServer


def test_watched_projects_are_read_strictly() -> None:
    assert watched_projects("") == {} and watched_projects(" , ,") == {}
    assert watched_projects(" 12=reef-genus@3, 7=tiny ") == {
        12: {"model_name": "reef-genus", "conv_mask_to_poly": True, "organization_id": 3},
        7: {"model_name": "tiny", "conv_mask_to_poly": True, "organization_id": None},
    }
    for bad in ("12", "12=", "x=tiny", "12=tiny@lab", "=tiny", "12= @3"):
        with pytest.raises(CoralsegError) as err:
            watched_projects(f"7=tiny,{bad}")
        assert str(err.value) == (
            f"CORALSEG_WATCH_PROJECTS entry {bad!r} is not PROJECT_ID=MODEL_NAME or "
            "PROJECT_ID=MODEL_NAME@ORG_ID (e.g. 12=reef-genus@3)"
        )


@pytest.fixture
def parts(cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path):
    settings = bridge_settings(cvat.url, unloaded_registry, tmp_path / "cache")
    store, queue = open_storage(settings, 5.0)
    return settings, BridgeState(store), ModelRegistry.from_file(unloaded_registry), queue


def test_nothing_watched_asks_cvat_nothing(parts, cvat: FakeCvatServer) -> None:
    settings, state, registry, queue = parts
    assert reconcile(settings, state, registry, queue) == []
    assert cvat.state.requests == []


def test_one_pass_queues_what_was_missed_and_a_second_nothing(
    parts, cvat: FakeCvatServer, colony_labels
) -> None:
    settings, state, registry, queue = parts
    project, fresh, _ = make_job(cvat.state, colony_labels, frames=1, name="fresh")
    _, opened, _ = make_job(cvat.state, colony_labels, frames=1, name="opened")
    _, done, _ = make_job(cvat.state, colony_labels, frames=1, name="done")
    _, later, _ = make_job(cvat.state, colony_labels, frames=1, name="later")
    cvat.state.set_job(opened.jobs[0], state="in progress")
    cvat.state.set_job(done.jobs[0], stage="acceptance", state="completed")
    spec = registry.spec(MODEL)
    model = ModelChoice(MODEL, spec.version, False)
    # the bridge heard of "later" while it was new (an update that started nothing)
    seen = later.jobs[0]
    heard = JobEvent("update:job", seen.id, later.id, project.id, "new", "annotation",
                     "annotation", seen.updated_date.isoformat(),
                     created_date=seen.created_date.isoformat())  # fmt: skip
    assert state.observe(heard, model).action == "ignored"
    state.subscribe(project.id, model)
    queued = reconcile(settings, state, registry, queue)
    runs = {state.run(run_id)["job_id"]: state.run(run_id) for run_id in queued}
    assert set(runs) == {fresh.jobs[0].id, opened.jobs[0].id}
    assert all(r["trigger"] == "reconcile" and r["enqueued"] for r in runs.values())
    assert not any(r["conv_mask_to_poly"] for r in runs.values())  # the subscription's choice
    assert queue.size() == 2
    assert state.job(done.jobs[0].id)["state"] == "completed"  # remembered, no run

    assert reconcile(settings, state, registry, queue) == []  # nothing new
    cvat.state.set_job(seen, state="in progress")  # went in progress while unheard
    (run_id,) = reconcile(settings, state, registry, queue)
    assert state.run(run_id)["job_id"] == seen.id and queue.size() == 3


def test_a_watched_project_runs_its_model_with_polygons(
    parts, cvat: FakeCvatServer, colony_labels
) -> None:
    settings, state, registry, queue = parts
    project, task, job = make_job(cvat.state, colony_labels, frames=1)
    settings = replace(settings, watch_projects=f"{project.id}={MODEL}")
    (run_id,) = reconcile(settings, state, registry, queue)
    run = state.run(run_id)
    assert (run["job_id"], run["model_name"], run["conv_mask_to_poly"]) == (job.id, MODEL, True)
    assert state.job(job.id)["task_id"] == task.id


def test_a_model_the_registry_lacks_is_skipped_with_a_warning(
    parts, cvat: FakeCvatServer, colony_labels, caplog: pytest.LogCaptureFixture
) -> None:
    settings, state, registry, queue = parts
    project, _, job = make_job(cvat.state, colony_labels, frames=1)
    state.subscribe(project.id, ModelChoice("retired-model", "1", True))
    with caplog.at_level(logging.WARNING, logger="cvat_bridge.reconcile"):
        assert reconcile(settings, state, registry, queue) == []
    assert f"project {project.id} asks for model 'retired-model'" in caplog.text
    assert state.job(job.id) is None and queue.size() == 0
