"""Webhook bodies read into job events: every malformed body is a BadEventError (a 400),
however it is malformed, and only CVAT's own job event names are job events."""

from __future__ import annotations

import json

import pytest

from cvat_bridge.events import JOB_EVENTS, BadEventError, job_event, parse_body

JOB = {
    "id": 5,
    "task_id": 2,
    "project_id": 1,
    "state": "in progress",
    "stage": "annotation",
    "type": "annotation",
    "updated_date": "2026-05-01T10:00:00.000000Z",
    "created_date": "2026-04-01T09:00:00.000000Z",
}


def body(**job_changes) -> dict:
    return {"event": "update:job", "webhook_id": 3, "job": {**JOB, **job_changes}}


def test_a_cvat_job_event_is_read() -> None:
    event = job_event(parse_body(json.dumps(body()).encode()))
    assert (event.job_id, event.task_id, event.project_id, event.webhook_id) == (5, 2, 1, 3)
    assert event.created_date == JOB["created_date"] and event.updated.year == 2026
    assert job_event(body(id="5")).job_id == 5  # ids as decimal text are ids too


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser's recursion
        b'{"event": "update:job", "job": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_001,
        b"\xff\xfe not utf-8",
        b'{"event": 5}',
        b"[]",
    ],
)
def test_malformed_bodies_are_bad_events(raw: bytes) -> None:
    with pytest.raises(BadEventError):
        job_event(parse_body(raw))


@pytest.mark.parametrize(
    "changes",
    [
        {"id": 1e999},  # what json.loads makes of 1e999: inf
        {"id": 5.5},
        {"id": True},
        {"id": "5; drop"},
        {"id": 2**70},
        {"id": None},
        {"task_id": [1]},
        {"project_id": {"id": 1}},
        {"updated_date": "yesterday"},
        {"created_date": "2026-13-45"},
    ],
)
def test_garbled_fields_are_bad_events(changes: dict) -> None:
    with pytest.raises(BadEventError, match="lacks or garbles"):
        job_event(body(**changes))


def test_only_cvat_job_event_names_are_job_events() -> None:
    assert {"update:job", "create:job"} == JOB_EVENTS
    for name in ("evil:job", "delete:job", "update:jobs", "update:job "):
        assert name not in JOB_EVENTS
