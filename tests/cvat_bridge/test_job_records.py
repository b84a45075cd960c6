"""cvat_bridge.job_records on its own: what is remembered of a job, the decision each kind
of event leads to (created, assigned, stages, completed), the run a requeue names, and the
projects' subscriptions -- over the SQLite file and a real Redis. (The in-progress trigger,
stale events, run keys, reinstalled CVATs and concurrent deliveries are in test_state.py.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from cvat_bridge.events import CREATE_JOB, JobEvent
from cvat_bridge.job_records import JobRecords, ModelChoice
from cvat_bridge.kv import Store
from cvat_bridge.run_records import DONE, RunRecords
from tests.cvat_bridge.test_run_records import Clock, store_fixture  # noqa: F401 -- the fixture

MODEL = ModelChoice("tiny", "v1", True)


class Jobs(JobRecords, RunRecords):
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock


@pytest.fixture
def jobs(store: Store) -> Jobs:
    return Jobs(store, Clock())


def event(second: int, state: str = "new", **changes) -> JobEvent:
    base = JobEvent(
        "update:job", 5, 7, 3, state, "annotation", "annotation",
        f"2026-05-01T10:00:{second:02d}Z", created_date="2026-05-01T09:00:00Z",
    )  # fmt: skip
    return replace(base, **changes)


def test_the_job_is_remembered_as_the_event_said(jobs: Jobs) -> None:
    assert jobs.job(5) is None and not jobs.seen(5, "2026-05-01T09:00:00Z")
    jobs.clock.now = 1234.0
    jobs.observe(event(1, assignee_id=9), MODEL)
    assert jobs.job(5) == {
        "state": "new", "stage": "annotation", "type": "annotation", "task_id": 7,
        "project_id": 3, "updated_date": "2026-05-01T10:00:01Z",
        "created_date": "2026-05-01T09:00:00Z", "assignee_id": 9, "seen_at": 1234.0,
    }  # fmt: skip
    assert jobs.seen(5, "2026-05-01T09:00:00.000000+00:00")  # the same time, spelt otherwise
    assert jobs.seen(5, "")  # a date not given: not another job
    assert not jobs.seen(5, "2026-05-02T09:00:00Z")  # another CVAT's job 5


def test_a_created_job_starts_a_run_in_the_models_stages_only(jobs: Jobs) -> None:
    created = jobs.observe(event(1, event=CREATE_JOB), MODEL)
    assert (created.action, created.reason) == ("queued", "job created")
    run = jobs.run(created.run_id)
    assert (run["trigger"], run["job_id"], run["model_version"]) == ("webhook", 5, "v1")

    other = replace(event(1, event=CREATE_JOB), job_id=6, stage="validation")
    refused = jobs.observe(other, MODEL)
    assert (refused.action, refused.run_id) == ("ignored", None)
    assert refused.reason == "job stage is 'validation'; this model pre-annotates annotation"
    assert jobs.job(6)["stage"] == "validation"  # remembered all the same
    both = replace(MODEL, stages=("annotation", "validation"))
    later = replace(other, event="update:job", state="in progress",
                    updated_date="2026-05-01T10:00:02Z")  # fmt: skip
    started = jobs.observe(later, both, trigger="reconcile")
    assert (started.action, started.reason) == ("queued", "job became in progress")
    assert jobs.run(started.run_id)["trigger"] == "reconcile"


def test_an_assignee_given_starts_a_run_once(jobs: Jobs) -> None:
    assert jobs.observe(event(1), MODEL).reason == "job state is 'new'"
    assigned = jobs.observe(event(2, assignee_id=9), MODEL)
    assert (assigned.action, assigned.reason) == ("queued", "job assigned")
    moved = jobs.observe(event(3, assignee_id=11), MODEL)  # handed to someone else
    assert (moved.action, moved.reason) == ("ignored", "job state is 'new'")
    assert len(jobs.runs_of_job(5)) == 1


def test_a_completed_job_given_an_assignee_starts_nothing(jobs: Jobs) -> None:
    decision = jobs.observe(event(1, "completed", assignee_id=9), MODEL)
    assert (decision.action, decision.reason) == ("ignored", "job state is 'completed'")
    assert jobs.runs_of_job(5) == [] and jobs.open_runs() == []


def test_other_job_types_are_remembered_but_never_run(jobs: Jobs) -> None:
    decision = jobs.observe(event(1, "in progress", type="consensus_replica"), MODEL)
    assert decision.reason == "a consensus_replica job, not an annotation job"
    assert jobs.job(5)["type"] == "consensus_replica" and jobs.runs_of_job(5) == []


def test_a_later_event_names_the_run_whose_message_was_not_sent(jobs: Jobs) -> None:
    first = jobs.observe(event(1, event=CREATE_JOB), MODEL)
    jobs.clock.now += 20
    # a newer event that would start a run finds the unsent one: existing, named to send
    again = jobs.observe(event(2, "in progress"), MODEL, resend_after=10)
    assert (again.action, again.run_id, again.requeue) == ("existing", first.run_id, first.run_id)
    # an event that starts nothing names it too
    plain = jobs.observe(event(3, "in progress"), MODEL, resend_after=10)
    assert (plain.action, plain.requeue) == ("ignored", first.run_id)
    jobs.mark_enqueued(first.run_id)
    assert jobs.observe(event(4, "in progress"), MODEL, resend_after=10).requeue is None
    jobs.claim(first.run_id, "w1", 10)
    jobs.finish(first.run_id, "w1", DONE)
    jobs.observe(event(5, "completed"), MODEL)
    done = jobs.observe(event(6, "in progress"), MODEL, resend_after=10)
    assert (done.action, done.run_id, done.requeue) == ("existing", first.run_id, None)


def test_each_model_has_its_own_run_of_a_job(jobs: Jobs) -> None:
    tiny = jobs.observe(event(1, event=CREATE_JOB), MODEL)
    # the same event under another project's webhook asking for another model
    other = jobs.observe(event(1, event=CREATE_JOB), ModelChoice("big", "2", False))
    assert tiny.action == "queued"
    assert (other.action, other.reason) == ("ignored", "stale or repeated event (job not newer "
                                            "than seen)")  # fmt: skip
    newer = jobs.observe(event(2, "in progress"), ModelChoice("big", "2", False))
    assert newer.action == "queued" and newer.run_id != tiny.run_id
    assert sorted(r["model_name"] for r in jobs.runs_of_job(5)) == ["big", "tiny"]


def test_subscriptions_are_written_only_when_they_change(jobs: Jobs) -> None:
    assert jobs.subscriptions() == {}
    jobs.subscribe(None, MODEL)  # a task without a project: nothing to watch
    assert jobs.subscriptions() == {}
    jobs.subscribe(3, MODEL)
    jobs.clock.now += 50
    jobs.subscribe(3, MODEL)  # the same: not rewritten
    assert jobs.subscriptions() == {
        3: {"model_name": "tiny", "conv_mask_to_poly": True, "organization_id": None,
            "since": 1000.0},
    }  # fmt: skip
    jobs.subscribe(3, MODEL, organization_id=4)  # the project moved into an organization
    jobs.subscribe(12, ModelChoice("big", "2", False))
    found = jobs.subscriptions()
    assert found[3]["organization_id"] == 4 and found[3]["since"] == 1050.0
    assert found[12]["model_name"] == "big" and not found[12]["conv_mask_to_poly"]
