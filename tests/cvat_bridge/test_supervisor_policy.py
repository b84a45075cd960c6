"""cvat_bridge.supervisor's restart policy, beside the SIGKILL scenario of
test_supervisor.py: a worker that exits 0 was asked to stop and stays stopped, one that
fails is restarted after the backoff that ``report()`` counts down, and ``stop`` kills a
worker that ignores SIGTERM once its timeout is over, or at once when ``kill`` is called
while it waits (a second Ctrl-C) -- real child processes."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from cvat_bridge.events import JobEvent
from cvat_bridge.kv import SqliteStore
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.service import stop_workers
from cvat_bridge.state import BridgeState, ModelChoice
from cvat_bridge.supervisor import FIRST_BACKOFF, Supervisor
from tests.cvat_bridge.harness import wait_for


@pytest.fixture
def records(tmp_path: Path) -> tuple[BridgeState, BridgeQueue]:
    return BridgeState(SqliteStore(tmp_path / "records.sqlite")), BridgeQueue(
        str(tmp_path / "queue.sqlite")
    )


def python(code: str):
    return lambda worker_id: [sys.executable, "-c", code, worker_id]


def stubborn_worker(records, tmp_path: Path) -> Supervisor:
    """A started supervisor of one worker that ignores SIGTERM (it has started ignoring)."""
    ready = tmp_path / "ignoring"
    code = ("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            f"pathlib.Path({str(ready)!r}).touch(); time.sleep(600)")  # fmt: skip
    supervisor = Supervisor(python(code), 1, *records, poll_interval=0.05).start()
    wait_for(ready.exists, 20, "the worker to ignore SIGTERM")
    return supervisor


def test_a_worker_that_exits_0_is_not_restarted(records) -> None:
    supervisor = Supervisor(python("pass"), 1, *records, poll_interval=0.05).start()
    try:
        wait_for(lambda: supervisor.report()["running"] == 0, 20, "the worker to exit")
        time.sleep(FIRST_BACKOFF + 0.3)
        report = supervisor.report()
        assert (report["wanted"], report["running"], report["restarts"]) == (1, 0, 0)
        assert report["next_restart_in"] is None and report["pids"] == []
    finally:
        supervisor.stop(timeout=5)


def test_a_failing_worker_is_restarted_after_its_backoff(records) -> None:
    state, _ = records
    code = "import sys, time; time.sleep(0.3); sys.exit(3)"
    supervisor = Supervisor(python(code), 1, *records, poll_interval=0.05)
    supervisor.start()
    try:
        first_id = supervisor.slots[0].worker_id
        state.worker_heartbeat(first_id, {"pid": 1, "models": []})
        waiting = wait_for(
            lambda: (r := supervisor.report())["next_restart_in"] is not None and r, 20, "exit"
        )
        assert waiting["running"] == 0 and 0 <= waiting["next_restart_in"] <= FIRST_BACKOFF
        assert state.live_workers(60) == []  # the failed worker no longer counts as live
        restarted = wait_for(lambda: (r := supervisor.report())["restarts"] == 1 and r, 20)
        assert supervisor.slots[0].worker_id != first_id  # a new id: its own run owner
        assert restarted["wanted"] == 1
    finally:
        supervisor.stop(timeout=5)


def test_stop_kills_a_worker_that_ignores_sigterm(records, tmp_path: Path) -> None:
    supervisor = stubborn_worker(records, tmp_path)
    process = supervisor.slots[0].process
    started = time.monotonic()
    supervisor.stop(timeout=0.5)
    assert process.returncode == -9 and time.monotonic() - started < 5.0


def test_kill_while_stop_waits_ends_the_wait_and_gives_the_run_back(
    records, tmp_path: Path
) -> None:
    state, queue = records
    supervisor = stubborn_worker(records, tmp_path)
    process = supervisor.slots[0].process
    event = JobEvent("update:job", 4, 2, 1, "in progress", "annotation", "annotation",
                     "2026-05-01T10:00:00Z")  # fmt: skip
    run_id = state.observe(event, ModelChoice("tiny-coral", "1", True)).run_id
    assert state.claim(run_id, supervisor.slots[0].worker_id, lease=600)["status"] == "running"
    second_interrupt = threading.Timer(0.5, supervisor.kill)
    started = time.monotonic()
    second_interrupt.start()
    supervisor.stop(timeout=60)  # would wait a minute for the stubborn worker
    assert process.returncode == -9 and time.monotonic() - started < 10.0
    run = state.run(run_id)  # queued again now, not when its 600 s lease runs out
    assert run["status"] == "queued" and run["enqueued"] and queue.size() == 1


def test_a_second_sigterm_while_the_bridge_stops_kills_the_workers(records, tmp_path) -> None:
    """serve's cleanup (stop_workers) with a real SIGTERM to this process: its handler kills
    the stubborn worker, and the handlers before it are back afterwards."""
    caught: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, _: caught.append(signum))
    try:
        supervisor = stubborn_worker(records, tmp_path)
        process = supervisor.slots[0].process
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        started = time.monotonic()
        stop_workers(supervisor)
        assert process.returncode == -9 and time.monotonic() - started < 10.0
        assert caught == []  # the signal went to stop_workers' handler, not to ours
        os.kill(os.getpid(), signal.SIGTERM)  # ours is back
        wait_for(lambda: caught == [signal.SIGTERM], 5, "the restored handler")
    finally:
        signal.signal(signal.SIGTERM, before)
