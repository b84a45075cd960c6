"""cvat_bridge.run_records on its own: a run's record from creation to its end, who may
change it, what each refusal leaves untouched, and the summary ``/runs`` shows -- over the
SQLite file and a real Redis. (The event-to-run path and the happy lease cycle are in
test_state.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cvat_bridge.events import JobEvent
from cvat_bridge.job_records import ModelChoice
from cvat_bridge.kv import RedisStore, SqliteStore, Store
from cvat_bridge.run_records import (
    DONE,
    FAILED,
    MAX_ERRORS_KEPT,
    QUEUED,
    RUNNING,
    LostRunError,
    RunRecords,
    abandon,
    create_run,
    summary,
)

MODEL = ModelChoice("tiny", "v1", True)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def open_test_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return SqliteStore(tmp_path / "records.sqlite")
    return RedisStore(request.getfixturevalue("redis_url"))


@pytest.fixture(params=["sqlite", "redis"], name="store")
def store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Both record stores: the embedded SQLite file and a private real Redis."""
    opened = open_test_store(request.param, request, tmp_path)
    yield opened
    opened.close()


class Runs(RunRecords):
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock


def job_event(job_id: int = 1) -> JobEvent:
    return JobEvent("update:job", job_id, 7, 3, "in progress", "annotation", "annotation",
                    "2026-05-01T10:00:00Z", created_date="2026-04-01T00:00:00Z")  # fmt: skip


def new_run(runs: Runs, job_id: int = 1, model: ModelChoice = MODEL) -> str:
    run = runs.store.atomically(
        lambda txn: create_run(txn, job_event(job_id), model, "webhook", runs.clock())
    )
    return run["run_id"]


@pytest.fixture
def runs(store: Store) -> Runs:
    return Runs(store, Clock())


def test_a_new_run_is_queued_unsent_and_listed_everywhere(runs: Runs) -> None:
    first, second = new_run(runs), new_run(runs, model=ModelChoice("other", "3", False))
    run = runs.run(first)
    assert (run["status"], run["enqueued"], run["attempts"], run["owner"]) == (
        QUEUED, False, 0, None,
    )  # fmt: skip
    assert (run["job_id"], run["job_created_date"], run["task_id"], run["project_id"]) == (
        1, "2026-04-01T00:00:00Z", 7, 3,
    )  # fmt: skip
    assert (run["model_name"], run["model_version"], run["conv_mask_to_poly"]) == (
        "tiny", "v1", True,
    )  # fmt: skip
    assert run["queued_at"] == run["created_at"] == 1000.0
    assert runs.store.get("active:1:tiny") == first
    assert runs.store.get("active:1:other") == second
    assert [r["run_id"] for r in runs.runs_of_job(1)] == [first, second]
    assert [r["run_id"] for r in runs.open_runs()] == [first, second]
    assert first != second


def test_unknown_runs_and_jobs_are_empty_not_errors(runs: Runs) -> None:
    assert runs.run("nope") is None
    assert runs.runs_of_job(42) == [] and runs.open_runs() == []
    assert runs.claim("nope", "w1", 10) is None
    assert not runs.requeue_expired("nope")
    assert not runs.touch_queued("nope", 0)
    assert not runs.take_unsent("nope", 0)
    runs.mark_enqueued("nope")
    runs.release("nope", "w1")
    assert runs.release_owned_by("w", "gone") == []
    with pytest.raises(LostRunError, match="run nope is no longer held by w1"):
        runs.heartbeat("nope", "w1", 10)
    assert runs.store.keys("run:") == []  # none of these wrote a record


def test_only_the_holder_changes_a_running_run(runs: Runs) -> None:
    run_id = new_run(runs)
    with pytest.raises(LostRunError):  # queued: nobody holds it yet
        runs.set_total(run_id, "w1", 3)
    claimed = runs.claim(run_id, "w1", lease=10)
    assert claimed["enqueued"] and claimed["lease_until"] == 1010.0
    assert claimed["started_at"] == 1000.0
    for change in (
        lambda: runs.heartbeat(run_id, "w2", 10),
        lambda: runs.set_total(run_id, "w2", 3),
        lambda: runs.add_error(run_id, "w2", "not mine"),
        lambda: runs.begin_batch(run_id, "w2", [0], ["0|x"]),
        lambda: runs.commit_batch(run_id, "w2", [0], {5: 0}, removed=[]),
        lambda: runs.fail_frame(run_id, "w2", 0, "broken"),
        lambda: runs.finish(run_id, "w2", DONE),
    ):
        with pytest.raises(LostRunError):
            change()
    runs.release(run_id, "w2", "not mine either")  # silently nothing
    assert runs.run(run_id) == claimed
    assert runs.store.get("ledger:1:tiny") is None


def test_a_reclaimed_run_keeps_its_start_and_counts_attempts(runs: Runs) -> None:
    run_id = new_run(runs)
    runs.claim(run_id, "w1", lease=10)
    assert not runs.claimable(runs.run(run_id))  # held
    assert runs.claimable(runs.run(run_id), now=1010.5)  # as seen after the lease
    runs.clock.now = 1005.0
    assert not runs.requeue_expired(run_id)  # lease still running
    runs.clock.now = 1011.0
    again = runs.claim(run_id, "w2", lease=10)  # an expired lease is claimed directly
    assert (again["owner"], again["attempts"], again["started_at"]) == ("w2", 2, 1000.0)
    with pytest.raises(LostRunError):
        runs.heartbeat(run_id, "w1", 10)
    runs.heartbeat(run_id, "w2", 30)
    assert runs.run(run_id)["lease_until"] == 1041.0


def test_release_and_requeue_give_the_run_back_with_a_reason(runs: Runs) -> None:
    run_id = new_run(runs)
    runs.claim(run_id, "w1", lease=10)
    runs.clock.now = 1003.0
    runs.release(run_id, "w1", "CVAT out of reach; next attempt in 30 s")
    run = runs.run(run_id)
    assert (run["status"], run["owner"], run["lease_until"], run["queued_at"]) == (
        QUEUED, None, None, 1003.0,
    )  # fmt: skip
    assert run["errors"] == ["CVAT out of reach; next attempt in 30 s"]
    runs.release(run_id, "w1")  # already queued: nothing happens
    assert runs.run(run_id) == run

    runs.claim(run_id, "w2", lease=10)
    runs.clock.now = 1020.0
    assert runs.requeue_expired(run_id)
    assert not runs.requeue_expired(run_id)  # queued now: one worker requeues it
    run = runs.run(run_id)
    assert run["status"] == QUEUED and run["queued_at"] == 1020.0
    assert run["errors"][-1] == "worker w2 stopped renewing its lease; run queued again"


def test_touch_queued_only_moves_runs_waiting_too_long(runs: Runs) -> None:
    run_id = new_run(runs)
    runs.clock.now = 1010.0
    assert not runs.touch_queued(run_id, older_than=10)  # exactly 10 s: not older
    runs.clock.now = 1010.5
    assert runs.touch_queued(run_id, older_than=10)
    assert runs.run(run_id)["queued_at"] == 1010.5
    assert not runs.touch_queued(run_id, older_than=10)  # just touched
    runs.claim(run_id, "w1", 10)
    runs.clock.now = 5000.0
    assert not runs.touch_queued(run_id, older_than=10)  # running runs are not touched
    assert not runs.take_unsent(run_id, older_than=10)


def test_frames_done_failed_and_retried(runs: Runs) -> None:
    run_id = new_run(runs)
    runs.claim(run_id, "w1", 10)
    runs.fail_frame(run_id, "w1", 10, "the model failed on this frame")
    runs.fail_frame(run_id, "w1", 2, "the frame is not a readable image")
    runs.begin_batch(run_id, "w1", [3, 2], ["3|b", "2|a"])
    assert runs.run(run_id)["pending"] == {"frames": [2, 3], "fingerprints": ["2|a", "3|b"]}
    runs.commit_batch(run_id, "w1", [2, 3], {7: 2, 8: 3}, removed=[], skipped=2)
    runs.commit_batch(run_id, "w1", [3], {}, removed=[8], forgotten=[], skipped=1)
    run = runs.run(run_id)
    assert run["frames_done"] == [2, 3] and run["pending"] is None
    assert run["frames_failed"] == {"10": "the model failed on this frame"}  # 2 succeeded later
    assert (run["shapes_written"], run["shapes_removed"], run["shapes_skipped"]) == (2, 1, 3)
    shown = summary(run)
    assert shown["frames_done"] == 2 and shown["worker"] == "w1"
    assert shown["frames_failed"] == [{"frame": 10, "error": "the model failed on this frame"}]


def test_summary_sorts_failed_frames_as_numbers_and_reads_older_runs(runs: Runs) -> None:
    run_id = new_run(runs)
    run = runs.run(run_id)
    run["frames_failed"] = {"10": "b", "9": "a", "100": "c"}
    del run["shapes_skipped"]  # a run recorded before skipped shapes were counted
    shown = summary(run)
    assert [f["frame"] for f in shown["frames_failed"]] == [9, 10, 100]
    assert shown["shapes_skipped"] == 0 and shown["status"] == QUEUED
    assert set(shown) >= {"run_id", "job_id", "model_name", "model_version", "attempts"}
    assert "owner" not in shown and "pending" not in shown  # internal fields stay inside


def test_errors_keep_only_the_latest(runs: Runs) -> None:
    run_id = new_run(runs)
    runs.claim(run_id, "w1", 10)
    for i in range(MAX_ERRORS_KEPT + 5):
        runs.add_error(run_id, "w1", f"error {i}")
    errors = runs.run(run_id)["errors"]
    assert len(errors) == MAX_ERRORS_KEPT
    assert errors[0] == "error 5" and errors[-1] == f"error {MAX_ERRORS_KEPT + 4}"


def test_finishing_records_the_run_key_only_when_done(runs: Runs) -> None:
    failed = new_run(runs, job_id=1)
    runs.claim(failed, "w1", 10)
    runs.finish(failed, "w1", FAILED, "CVAT refused to read job 1: HTTP 404 Not Found")
    run = runs.run(failed)
    assert run["status"] == FAILED and run["lease_until"] is None and run["finished_at"]
    assert run["errors"] == ["CVAT refused to read job 1: HTTP 404 Not Found"]
    assert runs.store.get("active:1:tiny") is None
    assert runs.store.keys("done:") == []  # a failed run may run again
    with pytest.raises(LostRunError):
        runs.finish(failed, "w1", DONE)  # ended runs stay ended

    done = new_run(runs, job_id=2)
    runs.claim(done, "w1", 10)
    # another run of the job became the active one (its old job was replaced meanwhile)
    runs.store.atomically(lambda txn: txn.set("active:2:tiny", "someone-else"))
    runs.finish(done, "w1", DONE)
    assert runs.store.get("active:2:tiny") == "someone-else"  # not ours to delete
    assert runs.store.get("done:2:tiny:v1") == done
    assert runs.open_runs() == []


def test_abandon_ends_only_open_runs(runs: Runs) -> None:
    queued, done = new_run(runs, 1), new_run(runs, 2)
    runs.claim(done, "w1", 10)
    runs.finish(done, "w1", DONE)
    finished = runs.run(done)
    runs.store.atomically(lambda txn: abandon(txn, queued, 2000.0, "job 1 was replaced"))
    runs.store.atomically(lambda txn: abandon(txn, done, 2000.0, "job 2 was replaced"))
    runs.store.atomically(lambda txn: abandon(txn, "nope", 2000.0, "no such run"))
    run = runs.run(queued)
    assert (run["status"], run["finished_at"], run["errors"]) == (
        FAILED, 2000.0, ["job 1 was replaced"],
    )  # fmt: skip
    assert runs.run(done) == finished
    assert runs.open_runs() == []


def test_release_owned_by_takes_only_that_workers_running_runs(runs: Runs) -> None:
    mine, other, waiting = new_run(runs, 1), new_run(runs, 2), new_run(runs, 3)
    runs.claim(mine, "host:7:w0:aa", 600)
    runs.claim(other, "host:7:w10:bb", 600)  # a prefix of w1 must not match w10
    assert runs.release_owned_by("host:7:w1:", "worker w1 died") == []
    assert runs.release_owned_by("host:7:w0:", "worker w0 died") == [mine]
    assert runs.run(mine)["errors"] == ["worker w0 died"]
    assert runs.run(other)["status"] == RUNNING
    assert runs.run(waiting)["status"] == QUEUED and runs.run(waiting)["errors"] == []


def test_concurrent_claims_give_the_run_to_one_worker(runs: Runs) -> None:
    run_id = new_run(runs)
    barrier = threading.Barrier(8)

    def claim(i: int) -> str | None:
        barrier.wait()
        taken = runs.claim(run_id, f"w{i}", 10)
        return None if taken is None else taken["owner"]

    with ThreadPoolExecutor(8) as pool:
        owners = [o for o in pool.map(claim, range(8)) if o is not None]
    assert len(owners) == 1
    assert runs.run(run_id)["owner"] == owners[0] and runs.run(run_id)["attempts"] == 1
