"""People's edits survive reruns, and lost records cause no duplicates, end to end in one
process (fake CVAT, web service, worker): an attribute-only edit (cvat-core leaves the
source "auto") keeps the shape; a Redis restarted empty in the middle of a run (its ledger
and run records gone) is followed by a save that runs the job again -- the shapes the lost
run wrote are recognised in CVAT and not uploaded twice."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from cvat_bridge.uploads import fingerprint
from tests.cvat_bridge.harness import (
    MODEL,
    SECRET,
    WEBHOOK_PATH,
    InProcessBridge,
    RedisServer,
    bridge_settings,
    finished_runs,
    make_job,
    shapes_by_frame,
    wait_for,
)
from tests.cvat_bridge.test_annotation import auto_shapes
from tests.fake_cvat import FakeCvatServer
from tests.fake_cvat.server import _Serializer
from tests.fake_cvat.state import AttributeSpec, Label


def _labels_with_an_attribute(cvat: FakeCvatServer, names: list[str]) -> AttributeSpec:
    state = cvat.state
    bleached = AttributeSpec(state.next_id("attribute"), "bleached", "checkbox", mutable=True,
                             values=["false", "true"], default_value="false")  # fmt: skip
    labels = [Label(state.next_id("label"), name, attributes=[bleached]) for name in names]
    state.add_project("reef", labels)
    return bleached


def test_an_attribute_only_edit_keeps_the_shape_on_a_rerun(
    cvat: FakeCvatServer, bridge: InProcessBridge, colony_labels
) -> None:
    bleached = _labels_with_an_attribute(cvat, colony_labels)
    project, task, job = make_job(cvat.state, colony_labels, frames=2)
    cvat.state.add_webhook(project, bridge.url + WEBHOOK_PATH, SECRET)
    cvat.state.set_job(job, state="in progress")
    wait_for(lambda: finished_runs(bridge, job.id), 180, "the first run")
    first = sorted(s.id for s in auto_shapes(cvat, task))
    assert len(first) >= 2
    marked = first[0]
    # a person ticks "bleached" and nothing else: cvat-core keeps source "auto"
    flag = [{"spec_id": bleached.id, "value": "true"}]
    cvat.state.edit_shapes(task, update=[{"id": marked, "attributes": flag}])
    assert cvat.state.shape(task, marked).source == "auto"

    spec = bridge.registry.specs[MODEL]
    bridge.registry.specs[MODEL] = replace(spec, explicit_version="2")
    cvat.state.set_job(job, state="completed")
    cvat.state.set_job(job, state="in progress")
    rerun = wait_for(lambda: finished_runs(bridge, job.id, 2), 180, "the rerun")[0]
    assert rerun["status"] == "done" and rerun["model_version"] == "2"

    kept = cvat.state.shape(task, marked)
    assert kept.attributes == flag
    survivors = set(first) & {s.id for s in task.shapes}
    assert survivors == {marked}  # the untouched ones were replaced
    assert rerun["shapes_removed"] == len(first) - 1
    # the kept shape is the person's now: the model's same colony is not uploaded over it
    assert (rerun["shapes_written"], rerun["shapes_skipped"]) == (len(first) - 1, 1)
    assert len(auto_shapes(cvat, task)) == len(first)


def test_a_redis_emptied_mid_run_causes_no_duplicates(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels,
    redis_server: RedisServer, loaded_models,
) -> None:  # fmt: skip
    frames = 4
    settings = bridge_settings(
        cvat.url, registry_file, tmp_path / "cache", queue_url=redis_server.url
    )
    project, task, job = make_job(cvat.state, colony_labels, frames=frames)
    # the third frame comes slowly: Redis is emptied while the run waits for it
    slow = cvat.state.add_fault("GET", rf"/api/jobs/{job.id}/data$", delay=4.0, skip=2)
    with InProcessBridge(settings, models=loaded_models) as bridge:
        cvat.state.add_webhook(project, bridge.url + WEBHOOK_PATH, SECRET)
        cvat.state.set_job(job, state="in progress")
        wait_for(lambda: slow.hits == 1, 120, "the slow frame")
        assert sorted(shapes_by_frame(cvat.state, task)) == [0, 1]  # the first batch landed
        redis_server.restart_empty()
        assert bridge.state.runs_of_job(job.id) == []  # records and ledger are gone
        written = len(auto_shapes(cvat, task))

        # An annotator saves; the bridge, having forgotten the job, sees it in progress for
        # the first time and runs it again.
        wait_for(lambda: not bridge.state.open_runs(), 60, "the lost run to stop")
        cvat.state.touch_annotations(task)
        (run,) = wait_for(lambda: finished_runs(bridge, job.id), 180, "the run after the loss")
        assert run["status"] == "done" and run["frames_done"] == frames
    prints = Counter(fingerprint(_Serializer.shape(s)) for s in auto_shapes(cvat, task))
    assert sorted(shapes_by_frame(cvat.state, task)) == list(range(frames))
    assert all(count == 1 for count in prints.values()), "duplicate shapes"
    assert run["shapes_written"] == sum(prints.values())  # adopted + created
    assert sum(prints.values()) > written
