"""Jobs as the bridge last saw them, and the decision an event leads to.

* ``job:{id}`` -- the last applied event of a job: ``state``, ``stage``, ``type``,
  ``assignee_id``, ``updated_date``, ``created_date``. Events whose ``updated_date`` is not
  newer are stale or redelivered and change nothing. Which events start a run (a job
  created, assigned, or set "in progress" by a person): :mod:`.triggers`.
* A job is the pair (job id, ``created_date``): a reinstalled CVAT numbers its jobs from 1
  again, and an event whose ``created_date`` differs from the recorded one is a new job, not
  a stale event of the old one (its runs, run key and ledger are the old job's).
* ``active:{job}:{model}`` -- the run of this job and model that is queued or running: one at
  a time. ``done:{job}:{model}:{version}`` -- the run key of a finished run: a job that a
  model version has annotated is not annotated again by it (a reopened job would otherwise
  get back the colonies its annotator deleted).
* ``subscription:{project}`` -- the model a project's webhook asks for, and the project's
  organization (for reconciliation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cvat_bridge import triggers
from cvat_bridge.events import JobEvent, parse_date
from cvat_bridge.kv import Store, Txn
from cvat_bridge.ledger import forget_ledger
from cvat_bridge.run_records import QUEUED, abandon, create_run
from cvat_bridge.triggers import DEFAULT_STAGES


@dataclass(frozen=True)
class ModelChoice:
    """The model a webhook asks for: registry name, its version, and the shape type."""

    name: str
    version: str
    conv_mask_to_poly: bool
    stages: tuple[str, ...] = DEFAULT_STAGES  # job stages the model pre-annotates


@dataclass(frozen=True)
class Decision:
    """What an event led to: ``queued`` (``run_id`` is new), ``existing`` (a run of this
    job and model is already queued or running, or this version already did the job), or
    ``ignored`` (with the reason). ``requeue`` names a run recorded as queued whose queue
    message may never have been sent (the answer to its event was an error)."""

    action: str
    reason: str
    run_id: str | None = None
    requeue: str | None = None


class JobRecords:
    store: Store
    clock: Callable[[], float]

    def observe(
        self,
        event: JobEvent,
        model: ModelChoice,
        trigger: str = "webhook",
        resend_after: float = 0.0,
    ) -> Decision:
        """Apply a job event atomically: remember the job's state, and queue a run when
        :func:`.triggers.decide` says the event starts one. An event that starts no new run
        names in ``requeue`` the job's queued run whose queue message was not confirmed
        ``resend_after`` seconds after it was recorded (the request that recorded it has
        given up by then): CVAT's retry of the event that recorded it, or any later event of
        the job, sends it."""
        now = self.clock()

        def apply(txn: Txn) -> Decision:
            key = f"job:{event.job_id}"
            known = txn.get(key)
            if known is not None and _another_job(known, event.created_date):
                _retire(txn, event.job_id, model, self.clock())
                known = None
            if known is not None and parse_date(known["updated_date"]) >= event.updated:
                return Decision(
                    "ignored",
                    "stale or repeated event (job not newer than seen)",
                    requeue=_unsent_run(txn, event.job_id, model, now - resend_after),
                )
            txn.set(
                key,
                {
                    "state": event.state,
                    "stage": event.stage,
                    "type": event.type,
                    "task_id": event.task_id,
                    "project_id": event.project_id,
                    "updated_date": event.updated_date,
                    "created_date": event.created_date,
                    "assignee_id": event.assignee_id,
                    "seen_at": self.clock(),
                },
            )
            start = triggers.decide(known, event, model.stages)
            if not start.starts:
                return Decision(
                    "ignored",
                    start.reason,
                    requeue=_unsent_run(txn, event.job_id, model, now - resend_after),
                )
            return self._queue_run(txn, event, model, trigger, start.reason, now - resend_after)

        return self.store.atomically(apply)

    def _queue_run(
        self,
        txn: Txn,
        event: JobEvent,
        model: ModelChoice,
        trigger: str,
        why: str,
        resend_before: float,
    ) -> Decision:
        active = txn.get(f"active:{event.job_id}:{model.name}")
        if active is not None:
            return Decision(
                "existing",
                "a run of this job and model is queued or running",
                active,
                requeue=_unsent_run(txn, event.job_id, model, resend_before),
            )
        done = txn.get(f"done:{event.job_id}:{model.name}:{model.version}")
        if done is not None:
            return Decision("existing", "this model version already annotated the job", done)
        run = create_run(txn, event, model, trigger, self.clock())
        return Decision("queued", why, run["run_id"])

    def job(self, job_id: int) -> dict | None:
        return self.store.get(f"job:{job_id}")

    def seen(self, job_id: int, created_date: str) -> bool:
        """Has the bridge recorded this job (this id, created at ``created_date``)?"""
        known = self.job(job_id)
        return known is not None and not _another_job(known, created_date)

    def subscribe(
        self, project_id: int | None, model: ModelChoice, organization_id: int | None = None
    ) -> None:
        """Remember which model a project's webhook asks for, and the project's organization
        (CVAT lists an organization's jobs only in its context), written only on a change."""
        if project_id is None:
            return
        wanted = {
            "model_name": model.name,
            "conv_mask_to_poly": model.conv_mask_to_poly,
            "organization_id": organization_id,
        }
        key = f"subscription:{project_id}"
        known = self.store.get(key)
        if known is not None and {k: known.get(k) for k in wanted} == wanted:
            return
        self.store.atomically(lambda txn: txn.set(key, {**wanted, "since": self.clock()}))

    def subscriptions(self) -> dict[int, dict]:
        found = {}
        for key in self.store.keys("subscription:"):
            value = self.store.get(key)
            if value is not None:
                found[int(key.split(":", 1)[1])] = value
        return found


def _another_job(known: dict, created_date: str) -> bool:
    """Is a job created at ``created_date`` another job than the recorded one with its id (a
    reinstalled CVAT)? Dates are compared as times: webhooks spell them ``...Z``, cvat-sdk's
    (reconciliation) ``...+00:00``."""
    recorded = known.get("created_date")
    if not (recorded and created_date):
        return False
    return parse_date(recorded) != parse_date(created_date)


def _retire(txn: Txn, job_id: int, model: ModelChoice, now: float) -> None:
    """Forget what belongs to the old job of this id: its open run (which must not run on
    the new job), run key and ledger (their shape ids are another CVAT's). Its runs stay
    readable under ``/runs``."""
    active = txn.get(f"active:{job_id}:{model.name}")
    if active is not None:
        reason = f"job {job_id} was replaced by a new job with the same id (CVAT reinstalled?)"
        abandon(txn, active, now, reason)
        txn.delete(f"active:{job_id}:{model.name}")
    txn.delete(f"done:{job_id}:{model.name}:{model.version}")
    forget_ledger(txn, job_id, model.name)


def _unsent_run(txn: Txn, job_id: int, model: ModelChoice, before: float) -> str | None:
    """The queued run of this job and model, recorded before ``before``, whose queue message
    was never confirmed."""
    run_id = txn.get(f"active:{job_id}:{model.name}")
    run = None if run_id is None else txn.get(f"run:{run_id}")
    if run is None or run["status"] != QUEUED or run.get("enqueued", True):
        return None
    return run_id if run["queued_at"] <= before else None
