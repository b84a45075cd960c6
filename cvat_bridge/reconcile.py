"""Reconciliation: catch the jobs that went "in progress" while the bridge was down.

For every project whose webhook the bridge has heard (``subscription:{project}`` in the
records, with the model it asked for), the annotation jobs now "in progress" are read from
CVAT and applied exactly like webhook events (:meth:`.state.BridgeState.observe`): a job
whose last seen state was another one, or that was never seen, gets a run; the rest change
nothing. (A job that left "in progress" and came back while the bridge was down cannot be
told from one that stayed: it is not run again.)
"""

from __future__ import annotations

import logging
import threading

from cvat_bridge.cvat_io import CvatSession
from cvat_bridge.events import JobEvent
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState, ModelChoice

log = logging.getLogger(__name__)


def reconcile(
    settings: BridgeSettings,
    state: BridgeState,
    registry: ModelRegistry,
    queue: BridgeQueue,
    stop: threading.Event | None = None,
) -> list[str]:
    """Queue runs for missed "in progress" jobs; returns the new run ids."""
    subscriptions = state.subscriptions()
    if not subscriptions:
        return []
    queued = []
    with CvatSession(settings, stop) as cvat:
        for project_id, wanted in sorted(subscriptions.items()):
            if wanted["model_name"] not in registry.specs:
                continue
            spec = registry.spec(wanted["model_name"])
            model = ModelChoice(spec.name, spec.version, bool(wanted["conv_mask_to_poly"]))
            for job in cvat.in_progress_jobs(project_id):
                event = JobEvent(
                    event="reconcile",
                    job_id=int(job.id),
                    task_id=int(job.task_id),
                    project_id=project_id,
                    state=str(job.state),
                    stage=str(job.stage),
                    type=str(job.type),
                    updated_date=job.updated_date.isoformat(),
                )
                decision = state.observe(event, model, trigger="reconcile")
                if decision.action == "queued":
                    queue.enqueue(decision.run_id)
                    queued.append(decision.run_id)
    if queued:
        log.info("reconciliation queued %d job(s) missed while the bridge was down", len(queued))
    return queued
