"""The bridge against CVAT as it really behaves (issue 17), each case following the CVAT code
the fake cites: pre-annotation before anyone opens a job, the manual "in progress" trigger,
a person's shapes winning, stages, honeypots, organizations, single deliveries."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from coral_core.formats.cvat_shapes import label_accepts
from cvat_bridge.events import JobEvent
from cvat_bridge.reconcile import reconcile, watched_projects
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.triggers import decide
from tests.cvat_bridge.harness import (
    MODEL,
    SECRET,
    WEBHOOK_PATH,
    InProcessBridge,
    bridge_settings,
    finished_runs,
    make_job,
    post_event,
    shapes_by_frame,
    wait_for,
)
from tests.fake_cvat import FakeCvatServer, FakeCvatState, Label, make_frame


def _frames(count: int, name: str = "q") -> list:
    return [
        make_frame(f"{name}{i}.jpg", 64, 48, color=(30 + 40 * i, 120, 160)) for i in range(count)
    ]


def test_a_new_job_is_pre_annotated_before_anyone_opens_it(
    cvat: FakeCvatServer, bridge: InProcessBridge, colony_labels
) -> None:
    """create:job arrives while CVAT still prepares the task's data: the run waits for it,
    leaves the honeypot out, and the job is still "new" when the annotator opens it; their
    first save (cvat-ui's "in progress") starts no second run."""
    state = cvat.state
    project = state.add_project("reef", colony_labels)
    state.add_webhook(
        project, bridge.url + WEBHOOK_PATH, SECRET, events=("create:job", "update:job")
    )
    task = state.add_task(project, "fresh", _frames(4), data_ready=False)
    job = task.jobs[0]
    state.set_honeypots(task, {3: 0})
    waiting = wait_for(
        lambda: [r for r in bridge.runs(job.id) if any("not ready" in e for e in r["errors"])],
        60,
        "the run to find the data not ready",
    )
    assert waiting[0]["status"] == "queued"
    state.finish_data(task)
    (run,) = wait_for(lambda: finished_runs(bridge, job.id), 180, "the run")
    assert run["status"] == "done" and run["trigger"] == "webhook"
    assert (run["frames_total"], run["frames_done"]) == (3, 3)
    assert any("honeypot" in error for error in run["errors"])
    assert set(shapes_by_frame(state, task)) == {0, 1, 2}  # frame 3 is a honeypot
    assert job.state == "new"  # the bridge's saves do not open the job

    state.annotator_saves(job)  # the first save of a person moves it to "in progress"
    assert job.state == "in progress"
    cvat.webhook_sender.wait_idle()
    assert len(bridge.runs(job.id)) == 1


def test_the_manual_trigger_leaves_a_persons_colonies_alone(
    cvat: FakeCvatServer, colony_labels, annotate_job
) -> None:
    """A person drew a colony over all of frame 0, then set the job "in progress" by hand (the
    job menu): the run writes nothing over it and counts what it left out."""

    def draw_over_frame_0(task) -> None:
        width, height = task.frames[0].width, task.frames[0].height
        outline = [0, 0, width, 0, width, height, 0, height]
        shape = {"frame": 0, "label": colony_labels[0], "type": "polygon", "points": outline}
        cvat.state.edit_shapes(task, add=[shape])

    annotated = annotate_job(frames=2, prepare=draw_over_frame_0)
    task, run = annotated.task, annotated.run
    assert run["status"] == "done"
    by_frame = shapes_by_frame(cvat.state, task)
    assert [s.source for s in by_frame[0]] == ["manual"]
    assert run["shapes_skipped"] >= 1
    assert run["shapes_written"] == len(by_frame.get(1, [])) > 0


def test_other_stages_wait_unless_the_model_asks_for_them(
    cvat: FakeCvatServer, bridge: InProcessBridge, colony_labels
) -> None:
    state = cvat.state
    _, _, job = make_job(state, colony_labels, frames=1)
    state.set_job(job, state="in progress")
    state.set_job(job, stage="validation")  # CVAT resets the state to "new"
    assert job.state == "new"
    state.set_job(job, state="in progress")  # a reviewer's first save
    answer = post_event(bridge.url, json.dumps(cvat.job_event(job)).encode())
    assert answer.status_code == 200 and "stage" in answer.json()["reason"]
    assert bridge.runs(job.id) == []
    event = JobEvent("update:job", job.id, 1, 1, "in progress", "validation", "annotation", "x")
    assert decide(None, event, ("annotation", "validation")).starts


def test_registry_stages_and_instance_settings_have_one_owner(tmp_path: Path, model_files):
    config, weights = model_files
    entry = f"models:\n  m:\n    config: {config}\n    weights: {weights}\n"
    good = tmp_path / "good.yaml"
    settings = "    min_area: 9\n    min_thickness: 4\n    neck_ratio: 0.5\n"
    good.write_text(entry + "    stages: [annotation, validation]\n" + settings)
    spec = ModelRegistry.from_file(good).spec("m")
    assert spec.stages == ("annotation", "validation") and spec.settings.min_area == 9
    assert (spec.settings.min_thickness, spec.settings.neck_ratio) == (4, 0.5)
    for bad, words in (
        ("    stages: [review]\n", "stages must be a list of"),
        ("    min_threshold: 0.5\n    unsure_threshold: 0.1\n", "model 'm' in the registry"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(entry + bad)
        with pytest.raises(ValueError, match=words):
            ModelRegistry.from_file(path)


def test_labels_that_take_no_colonies_are_named(
    cvat: FakeCvatServer, bridge: InProcessBridge, colony_labels
) -> None:
    """CVAT's model runner maps masks onto mask, polygon and any labels only."""
    assert [label_accepts(t) for t in ("mask", "polygon", "any", "rectangle")] == [1, 1, 1, 0]
    state = cvat.state
    project = state.add_project("boxes")
    for name in colony_labels:
        state.add_label(project, Label(state.next_id("label"), name, type="rectangle"))
    task = state.add_task(project, "boxed", _frames(1))
    state.add_webhook(project, bridge.url + WEBHOOK_PATH, SECRET)
    state.set_job(task.jobs[0], state="in progress")
    (run,) = wait_for(lambda: finished_runs(bridge, task.jobs[0].id), 180, "the run")
    assert run["status"] == "done" and task.shapes == []
    assert any("type mask, polygon or any" in error for error in run["errors"])


def test_an_organization_project_is_watched_without_any_event(
    registry_file: Path, tmp_path: Path, loaded_models
) -> None:
    """An older CVAT delivers once: the webhook's only delivery fails (the bridge is down)
    and is not retried. The watched project, in an organization, is reconciled in its
    organization's context (jobs.rego hides it from a list without one)."""
    state = FakeCvatState(older_server=True)
    boss = state.add_user("boss", "pw", is_superuser=False)
    bot = state.add_user("bot", "pw", is_superuser=False)
    lab = state.add_organization("criobe", boss, [(bot, "maintainer")])
    from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

    encoding = MaskEncoding(FAMILIES)
    labels = [encoding.label_names[v] for v in encoding.colony_values]
    project = state.add_project("lab reef", labels, owner=boss, organization=lab)
    task = state.add_task(project, "q", _frames(2), owner=boss)
    job = task.jobs[0]
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{unused.getsockname()[1]}{WEBHOOK_PATH}"
    with FakeCvatServer(state) as cvat:
        state.add_webhook(project, dead, SECRET)
        state.set_job(job, state="in progress")
        cvat.webhook_sender.wait_idle()
        assert [status for status, _ in cvat.webhook_sender.deliveries[0].attempts] == [502]
        settings = bridge_settings(
            cvat.url, registry_file, tmp_path / "cache", cvat_username="bot", cvat_password="pw"
        )
        with InProcessBridge(replace(settings, watch_projects=f"{project.id}={MODEL}"),
                             worker=False, web=False) as blind:  # fmt: skip
            found = reconcile(blind.settings, blind.state, blind.registry, blind.queue)
        assert found == []  # no organization context: the list hides the project's jobs
        watched = replace(
            settings, watch_projects=f"{project.id}={MODEL}@{lab.id}", reconcile_interval=0.5
        )
        assert watched_projects(watched.watch_projects)[project.id]["organization_id"] == lab.id
        with InProcessBridge(watched, models=loaded_models) as bridge:
            (run,) = wait_for(lambda: finished_runs(bridge, job.id), 180, "the reconciled run")
        assert run["status"] == "done" and run["trigger"] == "reconcile"
        assert sorted(shapes_by_frame(state, task)) == [0, 1]
