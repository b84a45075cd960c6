"""CVAT webhook bodies, read into :class:`JobEvent`.

CVAT posts ``{"event": "update:job", "webhook_id": N, "job": <the job as GET /api/jobs/N
returns it>, "sender": <user>}`` whenever a job is saved: a stage/state change, an
assignee change, and every annotation save (which moves ``updated_date``). Since 2026 there
is no ``before_update``, so the bridge keeps each job's last seen state itself
(:mod:`.state`). ``ping`` comes from the webhook form's Ping button.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coral_core.errors import CoralsegError

IN_PROGRESS = "in progress"


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
    assignee_id: int | None = None
    organization_id: int | None = None  # None: the owner's personal workspace

    @property
    def updated(self) -> datetime:
        return parse_date(self.updated_date)

    @property
    def is_annotation_job(self) -> bool:
        return self.type == "annotation"


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadEventError("the body is not JSON: CVAT webhooks post a JSON object") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise BadEventError('the body is not a CVAT webhook event (no "event" field)')
    return data


def job_event(data: dict[str, Any]) -> JobEvent:
    """The job event in a parsed body whose ``event`` ends with ``:job``."""
    job = data.get("job")
    if not isinstance(job, dict):
        raise BadEventError(f'a {data["event"]!r} event needs a "job" object')
    try:
        event = JobEvent(
            event=data["event"],
            job_id=int(job["id"]),
            task_id=int(job["task_id"]),
            project_id=None if job.get("project_id") is None else int(job["project_id"]),
            state=str(job["state"]),
            stage=str(job.get("stage", "")),
            type=str(job.get("type", "annotation")),
            updated_date=str(job["updated_date"]),
            webhook_id=None if data.get("webhook_id") is None else int(data["webhook_id"]),
            assignee_id=_id_of(job.get("assignee")),
            organization_id=_id_of(job.get("organization")),
        )
        event.updated  # noqa: B018 -- validates the date now, not later in a worker
    except (KeyError, TypeError, ValueError) as err:
        raise BadEventError(f"the job in the event lacks or garbles a field ({err})") from None
    return event


def _id_of(value: Any) -> int | None:
    """A CVAT reference as an id: ``{"id": N, ...}`` (users) or ``N`` (organizations)."""
    if value is None:
        return None
    return int(value["id"]) if isinstance(value, dict) else int(value)


def parse_date(text: str) -> datetime:
    """CVAT's ``2026-05-01T10:00:00.123456Z`` as an aware UTC datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
