"""End to end in one process: the fake CVAT delivers its webhooks (signed, retried, as CVAT
does) to the bridge, whose worker pre-annotates the job through cvat-sdk."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from cvat_sdk.masks import decode_mask

from cvat_bridge.uploads import fingerprint
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
from tests.fake_cvat import FakeCvatServer, Frame
from tests.fake_cvat.server import _Serializer


def auto_shapes(cvat: FakeCvatServer, task) -> list:
    with cvat.state.lock:
        return [s for s in task.shapes if s.source == "auto"]


def no_doubles(cvat: FakeCvatServer, task) -> bool:
    prints = Counter(fingerprint(_Serializer.shape(s)) for s in auto_shapes(cvat, task))
    return all(count == 1 for count in prints.values())


def test_job_in_progress_gets_shapes_on_every_frame_once(
    cvat: FakeCvatServer, bridge: InProcessBridge, colony_labels, annotate_job
) -> None:
    annotated = annotate_job(frames=4)
    project, task, job, run = annotated.project, annotated.task, annotated.job, annotated.run
    assert run["status"] == "done", run
    assert (run["frames_total"], run["frames_done"], run["frames_failed"]) == (4, 4, [])

    by_frame = shapes_by_frame(cvat.state, task)
    assert sorted(by_frame) == [0, 1, 2, 3]
    shapes = auto_shapes(cvat, task)
    assert len(shapes) == len(task.shapes) == run["shapes_written"] > 0
    labels = {label.id: label.name for label in project.labels}
    assert {labels[s.label_id] for s in shapes} <= set(colony_labels)
    assert {s.type for s in shapes} == {"polygon"}  # conv_mask_to_poly=true
    assert all(0 <= s.score <= 1 and len(s.points) >= 6 for s in shapes)
    assert no_doubles(cvat, task)

    # The bridge's uploads were annotation saves: CVAT sent update:job for each (state still
    # "in progress"). All answered, one started a run.
    sender = cvat.webhook_sender
    sender.wait_idle()
    assert len(sender.deliveries) >= 2
    assert [d.status for d in sender.deliveries].count(202) == 1
    assert all(d.status in (200, 202) for d in sender.deliveries)

    # A redelivered event and a duplicate of the last one change nothing.
    written = {s.id for s in task.shapes}
    sender.redeliver(sender.deliveries[0])
    sender.wait_idle()
    last = sender.deliveries[-2]
    assert post_event(bridge.url, last.body).json()["status"] == "ignored"
    assert sender.deliveries[-1].status == 200
    assert len(bridge.runs(job.id)) == 1
    assert {s.id for s in task.shapes} == written


def test_rerun_replaces_only_the_models_shapes(
    cvat: FakeCvatServer, bridge: InProcessBridge, annotate_job
) -> None:
    annotated = annotate_job(frames=3)
    project, task, job = annotated.project, annotated.task, annotated.job
    first = {s.id: s for s in auto_shapes(cvat, task)}
    assert len(first) >= 3
    ours = sorted(first)

    # People work: draw a colony, edit one of the model's (CVAT makes it semi-auto), delete
    # one; another auto-annotation tool adds a shape of its own.
    label = project.labels[0].name
    cvat.state.edit_shapes(
        task,
        add=[{"frame": 0, "label": label, "type": "polygon", "points": [1, 1, 9, 1, 5, 7]}],
        update=[{"id": ours[0], "source": "semi-auto", "points": [2, 2, 12, 2, 7, 9]}],
        remove=[ours[1]],
    )
    other_tool = cvat.state.add_shape(task, 1, label, "polygon", [3, 3, 8, 3, 5, 8], source="auto")
    human = {s.id: (s.source, list(s.points)) for s in task.shapes if s.source != "auto"}
    assert len(human) == 2

    # The same version does not annotate a reopened job again (it would bring back what the
    # annotator deleted) ...
    cvat.state.set_job(job, state="completed")
    cvat.state.set_job(job, state="in progress")
    cvat.webhook_sender.wait_idle()
    assert len(bridge.runs(job.id)) == 1
    # ... a new version of the model does.
    spec = bridge.registry.specs[MODEL]
    bridge.registry.specs[MODEL] = replace(spec, explicit_version="2")
    cvat.state.set_job(job, state="completed")
    cvat.state.set_job(job, state="in progress")
    runs = wait_for(lambda: finished_runs(bridge, job.id, 2), 180, "the rerun")
    rerun = runs[0]
    assert rerun["status"] == "done" and rerun["model_version"] == "2"

    after = {s.id: s for s in task.shapes}
    assert {i: (s.source, list(s.points)) for i, s in after.items() if s.source != "auto"} == human
    assert other_tool.id in after  # not this model's: kept
    mine_now = [s for s in auto_shapes(cvat, task) if s.id != other_tool.id]
    still_first = set(first) & set(after)
    assert still_first == {ours[0]}  # only the human-edited one survives
    assert rerun["shapes_removed"] == len(first) - 2  # minus the edited and the deleted one
    # same weights, same colonies; those a person's shape covers are left out
    assert len(mine_now) == rerun["shapes_written"]
    assert rerun["shapes_written"] + rerun["shapes_skipped"] == len(first)
    assert no_doubles(cvat, task)


def test_corrupt_frame_is_reported_and_the_others_complete(
    cvat: FakeCvatServer, annotate_job
) -> None:
    def break_frames(task) -> None:
        with cvat.state.lock:
            task.frames[2] = Frame("broken.jpg", 64, 48, b"\xff\xd8 not really a jpeg")
            task.deleted_frames = [4]  # deleted in CVAT: not annotated

    annotated = annotate_job(frames=5, prepare=break_frames)
    task, run = annotated.task, annotated.run
    assert run["status"] == "done"
    assert (run["frames_total"], run["frames_done"]) == (4, 3)
    (failed,) = run["frames_failed"]
    assert failed["frame"] == 2 and "not a readable image" in failed["error"]
    assert sorted(shapes_by_frame(cvat.state, task)) == [0, 1, 3]


def test_masks_when_not_converted_to_polygons(cvat: FakeCvatServer, annotate_job) -> None:
    path = WEBHOOK_PATH.replace("conv_mask_to_poly=true", "conv_mask_to_poly=false")
    annotated = annotate_job(frames=2, path=path)
    task, run = annotated.task, annotated.run
    assert run["status"] == "done" and run["shapes_written"] > 0
    shapes = auto_shapes(cvat, task)
    assert {s.type for s in shapes} == {"mask"}
    for shape in shapes:
        frame = task.frames[shape.frame]
        bitmap = decode_mask(shape.points, image_width=frame.width, image_height=frame.height)
        assert bitmap.any() and bitmap.shape == (frame.height, frame.width)


def test_a_stopping_worker_gives_its_run_back(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels, loaded_models
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")
    project, task, job = make_job(cvat.state, colony_labels, frames=6)
    cvat.state.add_fault("GET", rf"/api/jobs/{job.id}/data", delay=0.5, times=100)
    with InProcessBridge(settings, models=loaded_models) as bridge:
        cvat.state.add_webhook(project, bridge.url + WEBHOOK_PATH, SECRET)
        cvat.state.set_job(job, state="in progress")
        wait_for(lambda: any(r["frames_done"] >= 2 for r in bridge.runs(job.id)), 120, "2 frames")
        bridge.worker.stop()  # e.g. SIGTERM: the run goes back to the queue between frames
        (run,) = bridge.runs(job.id)
        assert run["status"] == "queued" and 2 <= run["frames_done"] < 6
        with InProcessBridge(settings, web=False, models=loaded_models):
            (run,) = wait_for(lambda: finished_runs(bridge, job.id), 120, "the resumed run")
    assert run["status"] == "done" and run["frames_done"] == 6 and run["attempts"] == 2
    assert sorted(shapes_by_frame(cvat.state, task)) == list(range(6))
    assert no_doubles(cvat, task)


def test_cvat_failures_and_timeouts_are_survived(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels, loaded_models
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache", cvat_timeout=1.0)
    state = cvat.state
    project, task, job = make_job(state, colony_labels, frames=4)
    faults = [
        state.add_fault("GET", rf"^/api/jobs/{job.id}/?$", status=502),
        state.add_fault("GET", rf"/api/jobs/{job.id}/data", status=503, times=2),
        state.add_fault("GET", rf"/api/jobs/{job.id}/data", delay=2.5),  # past the timeout
        state.add_fault("GET", r"/api/labels", status=500),
        # the first upload is made but its answer is lost: retrying blindly would double it
        state.add_fault("PATCH", rf"/api/jobs/{job.id}/annotations", status=500, after=True),
        state.add_fault("PATCH", rf"/api/jobs/{job.id}/annotations", delay=2.5, after=True),
    ]
    with InProcessBridge(settings, models=loaded_models) as bridge:
        cvat.state.add_webhook(project, bridge.url + WEBHOOK_PATH, SECRET)
        state.set_job(job, state="in progress")
        (run,) = wait_for(lambda: finished_runs(bridge, job.id), 180, "the run")
    assert all(f.hits >= 1 for f in faults), [(f.path, f.hits) for f in faults]
    assert run["status"] == "done", run
    assert (run["frames_done"], run["frames_failed"]) == (4, [])
    assert sorted(shapes_by_frame(state, task)) == [0, 1, 2, 3]
    assert run["shapes_written"] == len(auto_shapes(cvat, task))
    assert no_doubles(cvat, task)


def test_reconciliation_catches_jobs_missed_while_down(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels, loaded_models
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")
    _, _, first = make_job(cvat.state, colony_labels, frames=1, name="a")
    _, missed_task, missed = make_job(cvat.state, colony_labels, frames=2, name="b")
    with InProcessBridge(settings, worker=False) as bridge:
        cvat.state.set_job(first, state="new")
        assert post_event(bridge.url, _event_body(cvat, first)).status_code == 200
    # job b goes in progress while the bridge is down (no event reaches it)
    cvat.state.set_job(missed, state="in progress")
    with InProcessBridge(replace(settings, reconcile_interval=0.5), models=loaded_models) as bridge:
        (run,) = wait_for(lambda: finished_runs(bridge, missed.id), 180, "the reconciled run")
        assert run["trigger"] == "reconcile" and run["status"] == "done"
        assert bridge.runs(first.id) == []  # job a is not in progress
    assert sorted(shapes_by_frame(cvat.state, missed_task)) == [0, 1]


def _event_body(cvat: FakeCvatServer, job) -> bytes:
    import json

    return json.dumps(cvat.job_event(job)).encode()
