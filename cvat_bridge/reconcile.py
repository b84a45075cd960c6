"""Reconciliation: catch the job changes the bridge did not hear.

The projects watched are those whose webhook the bridge has heard (``subscription:{project}``
in the records, with the model it asked for and the project's organization) and those
given in ``CORALSEG_WATCH_PROJECTS`` (:func:`watched_projects`), so a bridge works even if
no event ever reaches it: an older CVAT delivers each event once, and a refused or lost
delivery is not sent again.

Each project's annotation jobs are listed in the project's organization (CVAT filters lists
by the caller's context, ``cvat/apps/engine/rules/jobs.rego``) and applied exactly like
webhook events (:meth:`.state.BridgeState.observe`, :mod:`.triggers`): a job never seen in
state "new" counts as created, one that became "in progress" or got an assignee starts a
run, the rest change nothing. (A job that left "in progress" and came back while the bridge
was not listening cannot be told from one that stayed: it is not run again.)
"""

from __future__ import annotations

import logging
import threading

from coral_core.errors import CoralsegError
from cvat_bridge.cvat_io import CvatSession
from cvat_bridge.events import CREATE_JOB, JobEvent
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState, ModelChoice

log = logging.getLogger(__name__)


def watched_projects(text: str) -> dict[int, dict]:
    """``CORALSEG_WATCH_PROJECTS``: comma-separated ``PROJECT_ID=MODEL_NAME`` entries, with
    ``@ORG_ID`` after the model for a project of an organization (``12=reef-genus@3``).
    Watched projects get polygons, as the documented webhook URL asks."""
    watched: dict[int, dict] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        project, _, rest = entry.partition("=")
        model, _, organization = rest.partition("@")
        try:
            project_id = int(project)
            organization_id = int(organization) if organization else None
        except ValueError:
            project_id = organization_id = None
        if project_id is None or not model.strip():
            raise CoralsegError(
                f"CORALSEG_WATCH_PROJECTS entry {entry!r} is not PROJECT_ID=MODEL_NAME or "
                "PROJECT_ID=MODEL_NAME@ORG_ID (e.g. 12=reef-genus@3)"
            )
        watched[project_id] = {
            "model_name": model.strip(),
            "conv_mask_to_poly": True,
            "organization_id": organization_id,
        }
    return watched


def reconcile(
    settings: BridgeSettings,
    state: BridgeState,
    registry: ModelRegistry,
    queue: BridgeQueue,
    stop: threading.Event | None = None,
) -> list[str]:
    """Queue runs for job changes the bridge missed; returns the new run ids."""
    projects = {**watched_projects(settings.watch_projects), **state.subscriptions()}
    if not projects:
        return []
    queued = []
    with CvatSession(settings, stop) as cvat:
        for project_id, wanted in sorted(projects.items()):
            if wanted["model_name"] not in registry.specs:
                log.warning(
                    "project %s asks for model %r, which the registry does not have",
                    project_id,
                    wanted["model_name"],
                )
                continue
            spec = registry.spec(wanted["model_name"])
            model = ModelChoice(
                spec.name, spec.version, bool(wanted["conv_mask_to_poly"]), spec.stages
            )
            for job in cvat.project_jobs(project_id, wanted.get("organization_id")):
                created = job.created_date.isoformat()
                unseen_new = str(job.state) == "new" and not state.seen(int(job.id), created)
                event = JobEvent(
                    event=CREATE_JOB if unseen_new else "reconcile",
                    job_id=int(job.id),
                    task_id=int(job.task_id),
                    project_id=project_id,
                    state=str(job.state),
                    stage=str(job.stage),
                    type=str(job.type),
                    updated_date=job.updated_date.isoformat(),
                    created_date=created,
                    assignee_id=None if job.assignee is None else int(job.assignee.id),
                    organization_id=wanted.get("organization_id"),
                )
                decision = state.observe(event, model, trigger="reconcile")
                if decision.action == "queued":
                    queue.enqueue(decision.run_id)
                    state.mark_enqueued(decision.run_id)
                    queued.append(decision.run_id)
    if queued:
        log.info("reconciliation queued %d job(s) the bridge had not heard of", len(queued))
    return queued
