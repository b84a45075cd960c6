"""CVAT webhook bodies, read into :class:`JobEvent`.

CVAT posts ``{"event": "update:job", "webhook_id": N, "job": <the job as GET /api/jobs/N
returns it>, "sender": <user>}`` whenever a job is saved: a stage/state change, an
assignee change, and every annotation save (which moves ``updated_date``), and
``create:job`` for each job of a new task. Since 2026 there is no ``before_update``, so the
bridge keeps each job's last seen state itself (:mod:`.job_records`); which events start a
run is :mod:`.triggers`' decision. ``ping`` comes from the webhook form's Ping button.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coral_core.errors import CoralsegError

IN_PROGRESS = "in progress"
CREATE_JOB, UPDATE_JOB = "create:job", "update:job"
JOB_EVENTS = frozenset({CREATE_JOB, UPDATE_JOB})  # the events that can start a run (.triggers)


class BadEventError(CoralsegError):
    """A body that is not a CVAT webhook event the bridge can read."""


@dataclass(frozen=True)
class JobEvent:
    """What the bridge needs from an ``update:job`` (or ``create:job``) body."""

    event: str
    job_id: int
    task_id: int
    project_id: int | None
    state: str
    stage: str
    type: str
    updated_date: str  # ISO 8601, UTC
    webhook_id: int | None = None
    created_date: str = ""  # with job_id, tells a job from another CVAT's job of that id
    assignee_id: int | None = None
    organization_id: int | None = None  # None: the owner's personal workspace

    @property
    def updated(self) -> datetime:
        return parse_date(self.updated_date)

    @property
    def is_annotation_job(self) -> bool:
        return self.type == "annotation"


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object with an ``event`` name; :class:`BadEventError` (a 400)
    for anything else, nesting too deep for the parser included."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadEventError("the body is not JSON: CVAT webhooks post a JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise BadEventError('the body is not a CVAT webhook event (no "event" field)')
    return data


def _integer(value: Any, what: str) -> int:
    """A JSON id: an integer (or its decimal text); not a float, a bool or ``1e999``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what} must be an integer, not {value!r}"[:120])
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError(f"{what} must be an integer, not {value!r}"[:120])
    number = int(value)
    if not 0 <= number < 2**63:
        raise ValueError(f"{what} is out of range")
    return number


def job_event(data: dict[str, Any]) -> JobEvent:
    """The job event in a parsed body whose ``event`` is one of :data:`JOB_EVENTS`."""
    job = data.get("job")
    if not isinstance(job, dict):
        raise BadEventError(f'a {data["event"]!r} event needs a "job" object')
    try:
        event = JobEvent(
            event=data["event"],
            job_id=_integer(job["id"], "job id"),
            task_id=_integer(job["task_id"], "task_id"),
            project_id=None
            if job.get("project_id") is None
            else _integer(job["project_id"], "project_id"),
            state=str(job["state"]),
            stage=str(job.get("stage", "")),
            type=str(job.get("type", "annotation")),
            updated_date=str(job["updated_date"]),
            webhook_id=None
            if data.get("webhook_id") is None
            else _integer(data["webhook_id"], "webhook_id"),
            created_date=str(job.get("created_date") or ""),
            assignee_id=_id_of(job.get("assignee"), "assignee"),
            organization_id=_id_of(job.get("organization"), "organization"),
        )
        event.updated  # noqa: B018 -- validates the date now, not later in a worker
        if event.created_date:
            parse_date(event.created_date)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise BadEventError(f"the job in the event lacks or garbles a field ({err})") from None
    return event


def _id_of(value: Any, what: str) -> int | None:
    """A CVAT reference as an id: ``{"id": N, ...}`` (users) or ``N`` (organizations)."""
    if value is None:
        return None
    return _integer(value["id"] if isinstance(value, dict) else value, f"{what} id")


def parse_date(text: str) -> datetime:
    """CVAT's ``2026-05-01T10:00:00.123456Z`` as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
