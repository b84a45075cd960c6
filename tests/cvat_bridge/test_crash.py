"""``coralseg bridge`` killed with SIGKILL in the middle of a job -- at the worst moment, after
CVAT took an upload and before the bridge recorded it -- then started again: the job
completes with every frame annotated once, exactly as an uninterrupted run does it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cvat_bridge.uploads import fingerprint
from tests.cvat_bridge.harness import (
    SECRET,
    WEBHOOK_PATH,
    BridgeProcess,
    bridge_settings,
    make_job,
    shapes_by_frame,
    wait_for,
)
from tests.fake_cvat import FakeCvatServer
from tests.fake_cvat.server import _Serializer

FRAMES = 6


def _prints_by_frame(cvat: FakeCvatServer, task) -> dict[int, Counter]:
    return {
        frame: Counter(fingerprint(_Serializer.shape(s)) for s in shapes)
        for frame, shapes in shapes_by_frame(cvat.state, task).items()
    }


def _finished(bridge: BridgeProcess, job_id: int) -> dict | None:
    runs = bridge.runs(job_id)
    return runs[0] if runs and runs[0]["status"] in ("done", "failed") else None


@pytest.mark.slow  # two bridge start-ups (torch + model) and a job: ~2.5 min on 2 busy cores
@pytest.mark.data_guard
def test_sigkill_mid_upload_then_restart(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache", cvat_timeout=30.0)
    state = cvat.state
    project, task, job = make_job(state, colony_labels, frames=FRAMES, name="crash")
    _, twin_task, twin = make_job(state, colony_labels, frames=FRAMES, name="crash")
    # The second upload (frames 2-3) is made in CVAT, but its answer takes 8 s: the bridge
    # is killed while waiting for it, so its records do not know those shapes exist.
    held = state.add_fault(
        "PATCH", rf"/api/jobs/{job.id}/annotations", delay=8.0, after=True, skip=1
    )
    log = tmp_path / "bridge.log"
    bridge = BridgeProcess(settings, "--workers", "1", log=log).start()
    try:
        state.add_webhook(project, bridge.url + WEBHOOK_PATH, SECRET)
        state.set_job(job, state="in progress")
        wait_for(lambda: held.hits == 1, 180, "the second upload")
        wait_for(lambda: len(shapes_by_frame(state, task)) >= 4, 30, "the upload to land")
        bridge.kill()
        killed_run = wait_for(lambda: _records_run(settings, job.id), 10, "records")
        assert killed_run["status"] == "running" and killed_run["pending"] is not None
        assert len(killed_run["frames_done"]) == 2
        assert len(shapes_by_frame(state, task)) == 4  # frames 4-5 not reached

        # the same address: CVAT's webhook still points there
        bridge = BridgeProcess(settings, "--workers", "1", log=log, port=bridge.port).start()
        run = wait_for(lambda: _finished(bridge, job.id), 180, "the resumed run")
        assert run["status"] == "done", run
        assert run["attempts"] == 2 and run["frames_done"] == FRAMES
        assert run["frames_failed"] == []
        assert any("stopped renewing its lease" in e for e in run["errors"])

        state.set_job(twin, state="in progress")  # the same frames, never interrupted
        wait_for(lambda: _finished(bridge, twin.id), 180, "the uninterrupted run")
    finally:
        bridge.stop()
    resumed, clean = _prints_by_frame(cvat, task), _prints_by_frame(cvat, twin_task)
    assert sorted(resumed) == list(range(FRAMES))
    assert resumed == clean  # no frame lost, none doubled


def _records_run(settings, job_id: int) -> dict | None:
    from cvat_bridge.kv import open_store
    from cvat_bridge.state import BridgeState

    store = open_store(settings.effective_queue_url)
    try:
        runs = BridgeState(store).runs_of_job(job_id)
        return runs[0] if runs else None
    finally:
        store.close()
