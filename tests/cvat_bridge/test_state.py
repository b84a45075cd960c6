"""The run records over both stores (SQLite file, real Redis): job-state memory, run keys,
claims and leases, the shape ledger -- including concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from cvat_bridge.events import JobEvent
from cvat_bridge.kv import RedisStore, SqliteStore
from cvat_bridge.state import DONE, BridgeState, LostRunError, ModelChoice

MODEL = ModelChoice("tiny", "v1", True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "redis"])
def state(request, tmp_path: Path) -> Iterator[tuple[BridgeState, Clock]]:
    if request.param == "sqlite":
        store = SqliteStore(tmp_path / "records.sqlite")
    else:
        store = RedisStore(request.getfixturevalue("redis_url"))
    clock = Clock()
    yield BridgeState(store, clock), clock
    store.close()


def event(job_id: int, state: str, second: int, type: str = "annotation") -> JobEvent:
    return JobEvent(
        "update:job", job_id, 7, 3, state, "annotation", type,
        f"2026-05-01T10:00:{second:02d}.000000Z",
    )  # fmt: skip


def test_a_run_starts_when_a_job_becomes_in_progress(state) -> None:
    records, _ = state
    assert records.observe(event(1, "new", 0), MODEL).action == "ignored"
    first = records.observe(event(1, "in progress", 1), MODEL)
    assert first.action == "queued" and first.run_id
    # the bridge's own upload saves the job: same state, newer date
    assert (
        records.observe(event(1, "in progress", 2), MODEL).reason == "job was already in progress"
    )
    # a redelivered or late event changes nothing
    assert records.observe(event(1, "in progress", 1), MODEL).action == "ignored"
    assert records.observe(event(1, "new", 0), MODEL).action == "ignored"
    # ground-truth jobs are never annotated
    assert (
        records.observe(event(2, "in progress", 1, type="ground_truth"), MODEL).action == "ignored"
    )
    # first seen already in progress (CVAT moved a new job there by itself): a run
    assert records.observe(event(3, "in progress", 5), MODEL).action == "queued"
    assert [r["run_id"] for r in records.runs_of_job(1)] == [first.run_id]
    assert records.job(1)["updated_date"].endswith("10:00:02.000000Z")


def test_one_open_run_per_job_and_model_and_one_run_per_version(state) -> None:
    records, _ = state
    run_id = records.observe(event(1, "in progress", 1), MODEL).run_id
    records.observe(event(1, "completed", 2), MODEL)
    again = records.observe(event(1, "in progress", 3), MODEL)
    assert (again.action, again.run_id) == ("existing", run_id)  # still queued
    assert records.claim(run_id, "w1", 10) is not None
    records.finish(run_id, "w1", DONE)
    records.observe(event(1, "completed", 4), MODEL)
    reopened = records.observe(event(1, "in progress", 5), MODEL)
    assert (reopened.action, reopened.reason) == (
        "existing",
        "this model version already annotated the job",
    )
    records.observe(event(1, "completed", 6), MODEL)
    newer = records.observe(event(1, "in progress", 7), ModelChoice("tiny", "v2", True))
    assert newer.action == "queued" and newer.run_id != run_id


def test_claims_leases_and_ledger(state) -> None:
    records, clock = state
    run_id = records.observe(event(1, "in progress", 1), MODEL).run_id
    assert records.claim(run_id, "w1", lease=10)["attempts"] == 1
    assert records.claim(run_id, "w2", lease=10) is None  # held
    records.set_total(run_id, "w1", 3)
    records.begin_batch(run_id, "w1", [0, 1], ["a", "b"])
    records.commit_batch(run_id, "w1", [0, 1], {101: 0, 102: 1}, removed=[])
    records.fail_frame(run_id, "w1", 2, "the frame is not a readable image")
    clock.now += 11  # w1 died: its lease ran out
    assert records.requeue_expired(run_id)
    taken = records.claim(run_id, "w2", lease=10)
    assert taken["attempts"] == 2 and taken["frames_done"] == [0, 1] and taken["pending"] is None
    with pytest.raises(LostRunError):
        records.heartbeat(run_id, "w1", 10)
    records.commit_batch(run_id, "w2", [0], {103: 0}, removed=[101])
    assert records.ledger(1, "tiny") == {102: 1, 103: 0}
    records.finish(run_id, "w2", DONE)
    run = records.run(run_id)
    assert run["status"] == DONE and run["shapes_written"] == 3 and run["shapes_removed"] == 1
    assert run["frames_failed"] == {"2": "the frame is not a readable image"}
    assert records.open_runs() == []


def test_concurrent_deliveries_queue_one_run(state) -> None:
    records, _ = state
    barrier = threading.Barrier(16)

    def deliver(i: int) -> str:
        barrier.wait()
        return records.observe(event(9, "in progress", 1 + i % 3), MODEL).action

    with ThreadPoolExecutor(16) as pool:
        actions = list(pool.map(deliver, range(16)))
    assert actions.count("queued") == 1
    assert len(records.runs_of_job(9)) == 1
    assert len(records.open_runs()) == 1


def test_a_reinstalled_cvat_repeating_job_ids_gets_new_runs(state) -> None:
    records, _ = state
    old = replace(event(1, "in progress", 30), created_date="2025-01-01T00:00:00Z")
    run_id = records.observe(old, MODEL).run_id
    assert records.claim(run_id, "w1", 10) is not None
    records.commit_batch(run_id, "w1", [0], {101: 0}, removed=[])
    # the same job with its date as cvat-sdk spells it (reconciliation) is the same job
    same = replace(event(1, "in progress", 31), created_date="2025-01-01T00:00:00.000+00:00")
    assert records.observe(same, MODEL).reason == "job was already in progress"
    assert records.ledger(1, "tiny") == {101: 0} and records.run(run_id)["status"] == "running"
    # CVAT reinstalled: job 1 again, created later, its dates earlier than the old job's
    new = replace(event(1, "in progress", 5), created_date="2026-05-01T09:00:00Z")
    decision = records.observe(new, MODEL)
    assert decision.action == "queued" and decision.run_id != run_id
    assert records.run(run_id)["status"] == "failed"  # must not run on the new job
    assert "same id" in records.run(run_id)["errors"][-1]
    assert records.ledger(1, "tiny") == {}  # the old CVAT's shape ids
    assert [r["run_id"] for r in records.open_runs()] == [decision.run_id]


def test_a_run_recorded_but_not_queued_is_named_for_requeueing(state) -> None:
    records, clock = state
    first = records.observe(event(1, "in progress", 1), MODEL)
    assert not records.run(first.run_id)["enqueued"]
    # a redelivery while the recording request may still be sending changes nothing ...
    clock.now += 1
    early = records.observe(event(1, "in progress", 1), MODEL, resend_after=9)
    assert early.action == "ignored" and early.requeue is None
    # ... CVAT's retry after that request has surely ended names the run to send
    clock.now += 9
    repeat = records.observe(event(1, "in progress", 1), MODEL, resend_after=9)
    assert repeat.action == "ignored" and repeat.requeue == first.run_id
    clock.now -= 10
    assert not records.take_unsent(first.run_id, older_than=30)  # too recent
    clock.now += 31
    assert records.take_unsent(first.run_id, older_than=30)
    assert not records.take_unsent(first.run_id, older_than=30)  # one worker sends it
    records.mark_enqueued(first.run_id)
    assert records.observe(event(1, "in progress", 1), MODEL).requeue is None


def test_the_runs_of_a_dead_worker_are_released_at_once(state) -> None:
    records, _ = state
    ours = records.observe(event(1, "in progress", 1), MODEL).run_id
    theirs = records.observe(event(2, "in progress", 1), MODEL).run_id
    records.claim(ours, "host:1:w0:aa", lease=600)
    records.claim(theirs, "host:1:w1:bb", lease=600)
    assert records.release_owned_by("host:1:w0:aa", "worker died") == [ours]
    assert records.run(ours)["status"] == "queued" and not records.run(ours)["enqueued"]
    assert records.run(theirs)["status"] == "running"


def test_the_ledger_keeps_what_each_frame_looked_like(state) -> None:
    records, _ = state
    run_id = records.observe(event(1, "in progress", 1), MODEL).run_id
    records.claim(run_id, "w1", 10)
    records.begin_batch(run_id, "w1", [0, 1], ["0|a", "0|b", "1|c"])
    records.commit_batch(run_id, "w1", [0, 1], {101: 0, 102: 0, 103: 1}, removed=[])
    assert records.ledger_prints(1, "tiny") == {0: {"0|a", "0|b"}, 1: {"1|c"}}
    records.begin_batch(run_id, "w1", [0], ["0|d"])
    records.commit_batch(run_id, "w1", [0], {104: 0}, removed=[101], forgotten=[102])
    assert records.ledger(1, "tiny") == {103: 1, 104: 0}
    assert records.ledger_prints(1, "tiny") == {0: {"0|d"}, 1: {"1|c"}}
