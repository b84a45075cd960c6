"""cvat_bridge.triggers on its own: the decision table of which job events start a run --
created, assigned, set in progress -- and every reason an event starts nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cvat_bridge.events import CREATE_JOB, UPDATE_JOB, JobEvent
from cvat_bridge.triggers import DEFAULT_STAGES, decide

EVENT = JobEvent(UPDATE_JOB, 1, 2, 3, "new", "annotation", "annotation", "2026-05-01T10:00:00Z")


def known(state: str = "new", assignee_id: int | None = None) -> dict:
    return {"state": state, "assignee_id": assignee_id}


@pytest.mark.parametrize(
    ("before", "changes", "reason"),
    [
        (None, {"event": CREATE_JOB}, "job created"),
        (known("in progress", 4), {"event": CREATE_JOB}, "job created"),  # created wins
        (known(), {"assignee_id": 9}, "job assigned"),
        (None, {"assignee_id": 9}, "job assigned"),
        (known("in progress"), {"state": "in progress", "assignee_id": 9}, "job assigned"),
        (known(), {"state": "in progress"}, "job became in progress"),
        (None, {"state": "in progress"}, "job became in progress"),
        (known("completed", 9), {"state": "in progress", "assignee_id": 9},
         "job became in progress"),  # reopened by hand
    ],
)  # fmt: skip
def test_events_that_start_a_run(before, changes: dict, reason: str) -> None:
    decision = decide(before, replace(EVENT, **changes), DEFAULT_STAGES)
    assert decision.starts and decision.reason == reason


@pytest.mark.parametrize(
    ("before", "changes", "reason"),
    [
        (None, {"type": "ground_truth", "event": CREATE_JOB},
         "a ground_truth job, not an annotation job"),
        (None, {"stage": "validation", "state": "in progress"},
         "job stage is 'validation'; this model pre-annotates annotation"),
        (None, {"stage": "acceptance", "event": CREATE_JOB},
         "job stage is 'acceptance'; this model pre-annotates annotation"),
        (known("in progress"), {"state": "in progress"}, "job was already in progress"),
        (known("new", 9), {"assignee_id": 11}, "job state is 'new'"),  # handed to another
        (known("new", 9), {"assignee_id": None}, "job state is 'new'"),  # unassigned
        (None, {"state": "completed", "assignee_id": 9}, "job state is 'completed'"),
        (known(), {"state": "rejected"}, "job state is 'rejected'"),
        (known(), {}, "job state is 'new'"),
    ],
)  # fmt: skip
def test_events_that_start_nothing_say_why(before, changes: dict, reason: str) -> None:
    decision = decide(before, replace(EVENT, **changes), DEFAULT_STAGES)
    assert not decision.starts and decision.reason == reason


def test_a_model_may_pre_annotate_more_stages() -> None:
    stages = ("annotation", "validation")
    validation = replace(EVENT, stage="validation", state="in progress")
    assert decide(None, validation, stages).reason == "job became in progress"
    refused = decide(None, replace(validation, stage="acceptance"), stages)
    assert (
        refused.reason
        == "job stage is 'acceptance'; this model pre-annotates annotation, validation"
    )
    assert not decide(None, validation, ()).starts  # no stage at all: never
