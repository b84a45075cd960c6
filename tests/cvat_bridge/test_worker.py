"""cvat_bridge.worker on its own, over a real Redis: which open runs a starting worker queues
again, what its recovery sends (runs of dead workers, runs recorded but never sent, runs
waiting too long) and what it leaves alone, each sent once whoever else recovers; and a
worker's life: its heartbeat with the models it holds, its runner installed and removed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cvat_bridge import queue as queue_module
from cvat_bridge.events import JobEvent
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.state import DONE, ModelChoice
from cvat_bridge.worker import REQUEUE_QUEUED_AFTER, UNSENT_AFTER, Worker
from tests.cvat_bridge.harness import MODEL, bridge_settings, wait_for

CHOICE = ModelChoice(MODEL, "1", True)


@pytest.fixture
def worker(redis_url: str, unloaded_registry: Path, tmp_path: Path) -> Worker:
    settings = bridge_settings("http://127.0.0.1:9", unloaded_registry, tmp_path / "cache",
                               queue_url=redis_url)  # fmt: skip
    return Worker(settings, ModelRegistry.from_file(unloaded_registry), "w-test", preload=False)


def new_run(worker: Worker, job_id: int, enqueued: bool = True, queued_ago: float = 0.0) -> str:
    event = JobEvent("update:job", job_id, 1, 1, "in progress", "annotation", "annotation",
                     "2026-05-01T10:00:00Z")  # fmt: skip
    run_id = worker.state.observe(event, CHOICE).run_id
    if enqueued:
        worker.state.mark_enqueued(run_id)
    if queued_ago:

        def age(txn) -> None:
            run = txn.get(f"run:{run_id}")
            txn.set(f"run:{run_id}", {**run, "queued_at": run["queued_at"] - queued_ago})

        worker.state.store.atomically(age)
    return run_id


def test_a_starting_worker_queues_the_open_runs_again(worker: Worker) -> None:
    queued = new_run(worker, 1)
    unsent = new_run(worker, 2, enqueued=False)
    dead = new_run(worker, 3)
    worker.state.claim(dead, "w-dead", lease=0.0)
    alive = new_run(worker, 4)
    worker.state.claim(alive, "w-alive", lease=600)
    finished = new_run(worker, 5)
    worker.state.claim(finished, "w-alive", lease=600)
    worker.state.finish(finished, "w-alive", DONE)
    time.sleep(0.01)  # the dead worker's lease is now in the past

    assert worker.requeue_open_runs() == 3
    assert sorted(t.args[0] for t in worker.queue.huey.pending()) == sorted([queued, unsent, dead])
    assert worker.state.run(dead)["status"] == "queued"
    assert worker.state.run(dead)["errors"] == [
        "worker w-dead stopped renewing its lease; run queued again"
    ]
    assert worker.state.run(alive)["owner"] == "w-alive"
    assert all(worker.state.run(i)["enqueued"] for i in (queued, unsent, dead))
    assert worker.recover() == 0  # all sent: recovery sends none of them again


def test_recovery_sends_each_lost_run_once(worker: Worker) -> None:
    fresh = new_run(worker, 1)
    recent_unsent = new_run(worker, 2, enqueued=False, queued_ago=UNSENT_AFTER - 5)
    lost_unsent = new_run(worker, 3, enqueued=False, queued_ago=UNSENT_AFTER + 5)
    waiting = new_run(worker, 4, queued_ago=REQUEUE_QUEUED_AFTER + 5)
    dead = new_run(worker, 5)
    worker.state.claim(dead, "w-dead", lease=0.0)
    time.sleep(0.01)

    assert worker.recover() == 3
    sent = sorted(t.args[0] for t in worker.queue.huey.pending())
    assert sent == sorted([lost_unsent, waiting, dead])
    assert all(worker.state.run(i)["enqueued"] for i in (lost_unsent, waiting, dead))
    assert not worker.state.run(recent_unsent)["enqueued"]
    assert worker.state.run(fresh)["status"] == "queued"
    # another worker recovering now finds nothing left to send
    assert worker.recover() == 0 and worker.queue.size() == 3


def test_a_worker_heartbeats_and_installs_its_runner_while_it_runs(worker: Worker) -> None:
    worker.start()
    try:
        assert queue_module._runner is worker.annotator
        (seen,) = wait_for(lambda: worker.state.live_workers(60), 20, "the heartbeat")
        assert seen["models"] == [] and seen["pid"] > 0  # lazy: nothing loaded yet
    finally:
        worker.stop(timeout=10)
    assert queue_module._runner is None and worker.stop_event.is_set()
    with pytest.raises(RuntimeError, match="this process has no bridge worker"):
        queue_module.annotate_job("any-run")
