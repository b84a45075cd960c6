"""Supervised workers: a worker process killed with SIGKILL (as the OOM killer does) is
reaped, reported by /health within a second, restarted with a growing backoff, and the run it
held goes back to the queue at once -- real processes, real signals, real HTTP."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx

from cvat_bridge.events import JobEvent
from cvat_bridge.state import ModelChoice
from cvat_bridge.supervisor import Supervisor
from tests.cvat_bridge.harness import InProcessBridge, bridge_settings, wait_for
from tests.fake_cvat import FakeCvatServer

MODEL = ModelChoice("tiny-coral", "1", True)


def sleeper(worker_id: str) -> list[str]:
    """A stand-in worker process: alive until killed."""
    return [sys.executable, "-c", "import time; time.sleep(600)", worker_id]


def test_a_killed_worker_is_restarted_and_its_run_given_back(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path
) -> None:
    settings = bridge_settings(cvat.url, unloaded_registry, tmp_path / "cache")
    web = InProcessBridge(settings, worker=False)
    supervisor = Supervisor(sleeper, 1, web.state, web.queue, poll_interval=0.1)
    web.supervisor = supervisor
    event = JobEvent("update:job", 4, 2, 1, "in progress", "annotation", "annotation",
                     "2026-05-01T10:00:00Z")  # fmt: skip
    with web:
        supervisor.start()
        try:
            assert httpx.get(f"{web.url}/health").json()["workers"]["running"] == 1
            slot = supervisor.slots[0]
            run_id = web.state.observe(event, MODEL).run_id
            assert web.state.claim(run_id, slot.worker_id, lease=600)["status"] == "running"
            web.state.worker_heartbeat(slot.worker_id, {"pid": slot.process.pid, "models": []})
            first_pid = slot.process.pid

            os.kill(first_pid, signal.SIGKILL)
            killed = time.monotonic()
            health = wait_for(
                lambda: (r := httpx.get(f"{web.url}/health")).status_code == 503 and r, 5, "503"
            )
            assert time.monotonic() - killed < 4.0  # noticed within polls (loose for a busy CI)
            assert health.json()["status"] == "degraded"
            assert health.json()["workers"]["running"] == 0
            # the run is queued again at once, not after its 600 s lease
            run = wait_for(lambda: (r := web.state.run(run_id))["status"] == "queued" and r, 5)
            assert any("died" in e for e in run["errors"]) and run["enqueued"]
            assert web.queue.size() == 1
            assert web.state.live_workers(60) == []  # the dead worker does not count as live
            assert not Path(f"/proc/{first_pid}").exists()  # reaped: no zombie left

            wait_for(lambda: httpx.get(f"{web.url}/health").status_code == 200, 5, "restart")
            restarted = time.monotonic() - killed
            assert 0.9 < restarted < 6.0  # the first backoff is 1 s (upper bound: busy CI)
            second_pid = supervisor.report()["pids"][0]
            assert second_pid != first_pid

            os.kill(second_pid, signal.SIGKILL)  # dies again at once: the backoff doubles
            killed = time.monotonic()
            wait_for(lambda: httpx.get(f"{web.url}/health").status_code == 503, 5, "503")
            wait_for(lambda: httpx.get(f"{web.url}/health").status_code == 200, 8, "restart")
            assert time.monotonic() - killed > 1.9
            assert supervisor.report()["restarts"] == 2
        finally:
            supervisor.stop(timeout=5)
    assert all(s.process.poll() is not None for s in supervisor.slots)
