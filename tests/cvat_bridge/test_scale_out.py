"""Scale-out on a real Redis: a web-only bridge and two worker-only processes (as on two
machines) share the jobs; each job runs once; and a burst of signed deliveries is answered
within CVAT's read timeout with memory flat."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cvat_bridge.uploads import fingerprint
from tests.cvat_bridge.harness import (
    SECRET,
    WEBHOOK_PATH,
    BridgeProcess,
    bridge_settings,
    make_job,
    post_event,
    shapes_by_frame,
    wait_for,
)
from tests.fake_cvat import FakeCvatServer
from tests.fake_cvat.server import _Serializer


def _all_finished(bridge: BridgeProcess, job_ids: list[int]) -> dict[int, list[dict]] | None:
    runs = {job_id: bridge.runs(job_id) for job_id in job_ids}
    if all(r and all(x["status"] in ("done", "failed") for x in r) for r in runs.values()):
        return runs
    return None


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@pytest.mark.slow  # three processes start (two load the model): ~1.5 min on 2 busy cores
@pytest.mark.data_guard
def test_two_workers_share_the_work_over_redis(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, redis_url: str, colony_labels
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache", queue_url=redis_url)
    state = cvat.state
    jobs = [make_job(state, colony_labels, frames=2, name=f"site{i}") for i in range(6)]
    for _, _, job in jobs:  # slow frames, so that no worker can take every job alone
        state.add_fault("GET", rf"/api/jobs/{job.id}/data", delay=0.5, times=10)
    log = tmp_path / "bridge.log"
    web = BridgeProcess(settings, "--workers", "0", log=log)
    workers = [BridgeProcess(settings, "--no-server", "--workers", "1", log=log) for _ in "ab"]
    try:
        for process in workers:
            process.start()
        web.start()  # ready once a worker has loaded the model
        state.add_webhook(jobs[0][0], web.url + WEBHOOK_PATH, SECRET)
        for _, _, job in jobs:
            state.set_job(job, state="in progress")
        runs = wait_for(lambda: _all_finished(web, [j.id for _, _, j in jobs]), 240, "all runs")
    finally:
        for process in [web, *workers]:
            process.stop()
    assert all(len(job_runs) == 1 for job_runs in runs.values()), runs
    finished = [job_runs[0] for job_runs in runs.values()]
    assert all(run["status"] == "done" and run["frames_done"] == 2 for run in finished)
    owners = Counter(run["worker"] for run in finished)
    assert len(owners) == 2, owners  # both worker processes took jobs
    for _, task, _ in jobs:
        assert sorted(shapes_by_frame(state, task)) == [0, 1]
        prints = Counter(fingerprint(_Serializer.shape(s)) for s in task.shapes)
        assert max(prints.values()) == 1


@pytest.mark.slow
@pytest.mark.data_guard
def test_burst_of_200_deliveries_for_50_jobs(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")  # embedded queue
    state = cvat.state
    jobs = [make_job(state, colony_labels, frames=1, name=f"burst{i}")[2] for i in range(60)]
    warm, burst = jobs[:10], jobs[10:]
    bridge = BridgeProcess(settings, "--workers", "2", log=tmp_path / "bridge.log").start()

    def deliveries(batch) -> list[bytes]:
        """Per job: "new", "in progress" twice (a redelivery) and a later annotation save."""
        bodies = []
        for job in batch:
            state.set_job(job, state="new")
            bodies.append(json.dumps(cvat.job_event(job)).encode())
            state.set_job(job, state="in progress")
            bodies += [json.dumps(cvat.job_event(job)).encode()] * 2
            state.touch_annotations(state.tasks[job.task_id])
            bodies.append(json.dumps(cvat.job_event(job)).encode())
        random.Random(0).shuffle(bodies)
        return bodies

    def send(body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        answer = post_event(bridge.url, body, timeout=10.0)
        return answer.status_code, time.perf_counter() - started

    try:
        with ThreadPoolExecutor(50) as pool:
            list(pool.map(send, deliveries(warm)))
            wait_for(lambda: _all_finished(bridge, [j.id for j in warm]), 240, "warm-up runs")
            rss_before = _rss_kib(bridge.process.pid)
            bodies = deliveries(burst)
            assert len(bodies) == 200
            answers = list(pool.map(send, bodies))
        runs = wait_for(lambda: _all_finished(bridge, [j.id for j in burst]), 600, "burst runs")
        rss_after = _rss_kib(bridge.process.pid)
    finally:
        bridge.stop()
    statuses = Counter(status for status, _ in answers)
    assert statuses == {202: 50, 200: 150}, statuses
    slowest = max(seconds for _, seconds in answers)
    assert slowest < 10.0, f"slowest answer took {slowest:.1f} s"
    assert all(len(r) == 1 and r[0]["status"] == "done" for r in runs.values())
    assert all(shapes_by_frame(state, state.tasks[j.task_id]) for j in burst)
    ordered = sorted(seconds for _, seconds in answers)
    median, p95 = ordered[len(ordered) // 2], ordered[int(0.95 * len(ordered)) - 1]
    print(
        f"burst: median answer {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"slowest {slowest * 1000:.0f} ms, "
        f"web RSS {rss_before} -> {rss_after} KiB"
    )
    assert rss_after - rss_before < 30 * 1024  # the web process stays flat
