"""What the bridge remembers, over a :mod:`.kv` store: jobs' last seen states, runs, and the
ledger of shapes each model wrote.

Documents (JSON, by key):

* ``job:{id}`` -- the last applied event of a job: ``state``, ``stage``, ``type``,
  ``assignee_id``, ``updated_date``. Events whose ``updated_date`` is not newer are stale or
  redelivered and change nothing. Which events start a run: :mod:`.triggers`.
* ``run:{id}`` -- a run (see :meth:`BridgeState.create_run` for its fields); ``job-runs:{job}``
  lists a job's runs; ``open-runs`` the queued and running ones.
* ``active:{job}:{model}`` -- the run of this job and model that is queued or running: one at
  a time. ``done:{job}:{model}:{version}`` -- the run key of a finished run: a job that a
  model version has annotated is not annotated again by it (a reopened job would otherwise
  get back the colonies its annotator deleted).
* ``ledger:{job}:{model}`` -- ``{shape id: frame}`` of the shapes this model created in the
  job. A rerun deletes those still in CVAT with ``source: "auto"``; a person's edit turns a
  shape's source into "semi-auto" (cvat-core's ``computeNewSource``), and such shapes, like
  "manual" ones, are never touched.
* ``subscription:{project}`` -- the model a project's webhook asks for, and the project's
  organization (for reconciliation).
* ``lease:{name}``, ``worker:{id}`` -- cluster-wide leases and worker heartbeats.

A worker holds a run by a lease (``owner``, ``lease_until``) that it renews; a run whose
lease ran out (its worker was killed) is claimed again by another worker and resumes from
the frames already committed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cvat_bridge import triggers
from cvat_bridge.events import JobEvent, parse_date
from cvat_bridge.kv import Store, Txn
from cvat_bridge.triggers import DEFAULT_STAGES

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
OPEN_STATUSES = (QUEUED, RUNNING)
MAX_ERRORS_KEPT = 50


class LostRunError(RuntimeError):
    """This worker no longer holds the run (its lease ran out and another worker took it)."""


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
    ``ignored`` (with the reason)."""

    action: str
    reason: str
    run_id: str | None = None


class BridgeState:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # --- jobs and events ----------------------------------------------------------------

    def observe(self, event: JobEvent, model: ModelChoice, trigger: str = "webhook") -> Decision:
        """Apply a job event atomically: remember the job's state, and queue a run when
        :func:`.triggers.decide` says the event starts one."""

        def apply(txn: Txn) -> Decision:
            key = f"job:{event.job_id}"
            known = txn.get(key)
            if known is not None and parse_date(known["updated_date"]) >= event.updated:
                return Decision("ignored", "stale or repeated event (job not newer than seen)")
            txn.set(
                key,
                {
                    "state": event.state,
                    "stage": event.stage,
                    "type": event.type,
                    "task_id": event.task_id,
                    "project_id": event.project_id,
                    "updated_date": event.updated_date,
                    "assignee_id": event.assignee_id,
                    "seen_at": self.clock(),
                },
            )
            start = triggers.decide(known, event, model.stages)
            if not start.starts:
                return Decision("ignored", start.reason)
            return self._queue_run(txn, event, model, trigger, start.reason)

        return self.store.atomically(apply)

    def _queue_run(
        self, txn: Txn, event: JobEvent, model: ModelChoice, trigger: str, why: str
    ) -> Decision:
        active = txn.get(f"active:{event.job_id}:{model.name}")
        if active is not None:
            return Decision("existing", "a run of this job and model is queued or running", active)
        done = txn.get(f"done:{event.job_id}:{model.name}:{model.version}")
        if done is not None:
            return Decision("existing", "this model version already annotated the job", done)
        run = self.create_run(txn, event, model, trigger)
        return Decision("queued", why, run["run_id"])

    def create_run(self, txn: Txn, event: JobEvent, model: ModelChoice, trigger: str) -> dict:
        now = self.clock()
        run = {
            "run_id": secrets.token_hex(8),
            "job_id": event.job_id,
            "task_id": event.task_id,
            "project_id": event.project_id,
            "model_name": model.name,
            "model_version": model.version,
            "conv_mask_to_poly": model.conv_mask_to_poly,
            "trigger": trigger,
            "status": QUEUED,
            "created_at": now,
            "queued_at": now,
            "started_at": None,
            "finished_at": None,
            "attempts": 0,
            "owner": None,
            "lease_until": None,
            "frames_total": None,
            "frames_done": [],
            "frames_failed": {},
            "shapes_written": 0,
            "shapes_removed": 0,
            "shapes_skipped": 0,
            "pending": None,
            "errors": [],
        }
        txn.set(f"run:{run['run_id']}", run)
        txn.set(f"active:{event.job_id}:{model.name}", run["run_id"])
        job_runs = txn.get(f"job-runs:{event.job_id}") or []
        txn.set(f"job-runs:{event.job_id}", [*job_runs, run["run_id"]])
        txn.set("open-runs", [*(txn.get("open-runs") or []), run["run_id"]])
        return run

    def job(self, job_id: int) -> dict | None:
        return self.store.get(f"job:{job_id}")

    # --- subscriptions --------------------------------------------------------------------

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

    # --- runs -----------------------------------------------------------------------------

    def run(self, run_id: str) -> dict | None:
        return self.store.get(f"run:{run_id}")

    def runs_of_job(self, job_id: int) -> list[dict]:
        ids = self.store.get(f"job-runs:{job_id}") or []
        return [run for run in (self.run(i) for i in ids) if run is not None]

    def open_runs(self) -> list[dict]:
        ids = self.store.get("open-runs") or []
        return [run for run in (self.run(i) for i in ids) if run is not None]

    def claimable(self, run: dict, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        if run["status"] == QUEUED:
            return True
        return run["status"] == RUNNING and (run["lease_until"] or 0) < now

    def claim(self, run_id: str, owner: str, lease: float) -> dict | None:
        """Take a queued run, or a running one whose lease ran out; None if not claimable."""

        def apply(txn: Txn) -> dict | None:
            run = txn.get(f"run:{run_id}")
            if run is None or not self.claimable(run):
                return None
            now = self.clock()
            run.update(
                status=RUNNING,
                owner=owner,
                lease_until=now + lease,
                attempts=run["attempts"] + 1,
                started_at=run["started_at"] or now,
            )
            txn.set(f"run:{run_id}", run)
            return run

        return self.store.atomically(apply)

    def _update_owned(self, run_id: str, owner: str, change: Callable[[Txn, dict], Any]) -> Any:
        def apply(txn: Txn) -> Any:
            run = txn.get(f"run:{run_id}")
            if run is None or run["status"] != RUNNING or run["owner"] != owner:
                raise LostRunError(f"run {run_id} is no longer held by {owner}")
            result = change(txn, run)
            txn.set(f"run:{run_id}", run)
            return result

        return self.store.atomically(apply)

    def heartbeat(self, run_id: str, owner: str, lease: float) -> None:
        """Renew the lease; raises :class:`LostRunError` if another worker took the run."""
        self._update_owned(
            run_id, owner, lambda txn, run: run.update(lease_until=self.clock() + lease)
        )

    def set_total(self, run_id: str, owner: str, frames_total: int) -> None:
        self._update_owned(run_id, owner, lambda txn, run: run.update(frames_total=frames_total))

    def add_error(self, run_id: str, owner: str, message: str) -> None:
        def change(txn: Txn, run: dict) -> None:
            run["errors"] = [*run["errors"], message][-MAX_ERRORS_KEPT:]

        self._update_owned(run_id, owner, change)

    def begin_batch(
        self, run_id: str, owner: str, frames: Iterable[int], fingerprints: Iterable[str]
    ) -> None:
        """Record an upload about to happen, so that a crash before :meth:`commit_batch`
        is recognised on resume (the shapes are matched by fingerprint)."""
        pending = {"frames": sorted(frames), "fingerprints": sorted(fingerprints)}
        self._update_owned(run_id, owner, lambda txn, run: run.update(pending=pending))

    def commit_batch(
        self,
        run_id: str,
        owner: str,
        frames: Iterable[int],
        created: dict[int, int],
        removed: Iterable[int],
        forgotten: Iterable[int] = (),
        skipped: int = 0,
    ) -> None:
        """Frames done: ``created`` shape ids (-> frame) join the model's ledger, ``removed``
        (deleted from CVAT) and ``forgotten`` (no longer the model's) leave it; ``skipped``
        counts colonies not written because a person's shape covers them."""
        frames, removed, forgotten = list(frames), list(removed), list(forgotten)

        def change(txn: Txn, run: dict) -> None:
            key = f"ledger:{run['job_id']}:{run['model_name']}"
            ledger = txn.get(key) or {}
            for shape_id in [*removed, *forgotten]:
                ledger.pop(str(shape_id), None)
            ledger.update({str(i): frame for i, frame in created.items()})
            txn.set(key, ledger)
            done = set(run["frames_done"]) | set(frames)
            run.update(
                frames_done=sorted(done),
                frames_failed={k: v for k, v in run["frames_failed"].items() if int(k) not in done},
                shapes_written=run["shapes_written"] + len(created),
                shapes_removed=run["shapes_removed"] + len(removed),
                shapes_skipped=run.get("shapes_skipped", 0) + skipped,
                pending=None,
            )

        self._update_owned(run_id, owner, change)

    def fail_frame(self, run_id: str, owner: str, frame: int, error: str) -> None:
        def change(txn: Txn, run: dict) -> None:
            run["frames_failed"] = {**run["frames_failed"], str(frame): error}

        self._update_owned(run_id, owner, change)

    def release(self, run_id: str, owner: str, error: str | None = None) -> None:
        """Give a run back to the queue (a stopping worker, or CVAT out of reach for now)."""

        def change(txn: Txn, run: dict) -> None:
            run.update(status=QUEUED, owner=None, lease_until=None, queued_at=self.clock())
            if error:
                run["errors"] = [*run["errors"], error][-MAX_ERRORS_KEPT:]

        def apply(txn: Txn) -> None:
            run = txn.get(f"run:{run_id}")
            if run is None or run["status"] != RUNNING or run["owner"] != owner:
                return
            change(txn, run)
            txn.set(f"run:{run_id}", run)

        self.store.atomically(apply)

    def requeue_expired(self, run_id: str) -> bool:
        """Put a running run whose lease ran out back in ``queued``; False if it is not."""

        def apply(txn: Txn) -> bool:
            run = txn.get(f"run:{run_id}")
            now = self.clock()
            if run is None or run["status"] != RUNNING or (run["lease_until"] or 0) >= now:
                return False
            message = f"worker {run['owner']} stopped renewing its lease; run queued again"
            run.update(status=QUEUED, owner=None, lease_until=None, queued_at=now)
            run["errors"] = [*run["errors"], message][-MAX_ERRORS_KEPT:]
            txn.set(f"run:{run_id}", run)
            return True

        return self.store.atomically(apply)

    def touch_queued(self, run_id: str, older_than: float) -> bool:
        """Mark a run queued more than ``older_than`` seconds ago as queued now; False if
        it is not such a run (so that only one worker queues it again)."""

        def apply(txn: Txn) -> bool:
            run = txn.get(f"run:{run_id}")
            now = self.clock()
            if run is None or run["status"] != QUEUED or now - run["queued_at"] <= older_than:
                return False
            run["queued_at"] = now
            txn.set(f"run:{run_id}", run)
            return True

        return self.store.atomically(apply)

    def finish(self, run_id: str, owner: str, status: str, error: str | None = None) -> None:
        """End a run (``done`` or ``failed``): it leaves the open runs; ``done`` records its
        run key."""

        def change(txn: Txn, run: dict) -> None:
            run.update(status=status, finished_at=self.clock(), lease_until=None, pending=None)
            if error:
                run["errors"] = [*run["errors"], error][-MAX_ERRORS_KEPT:]
            job, model = run["job_id"], run["model_name"]
            if txn.get(f"active:{job}:{model}") == run_id:
                txn.delete(f"active:{job}:{model}")
            if status == DONE:
                txn.set(f"done:{job}:{model}:{run['model_version']}", run_id)
            txn.set("open-runs", [i for i in (txn.get("open-runs") or []) if i != run_id])

        self._update_owned(run_id, owner, change)

    def ledger(self, job_id: int, model_name: str) -> dict[int, int]:
        raw = self.store.get(f"ledger:{job_id}:{model_name}") or {}
        return {int(k): int(v) for k, v in raw.items()}

    # --- leases and workers ---------------------------------------------------------------

    def take_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Hold the cluster-wide lease ``name`` for ``seconds`` unless another owner does."""

        def apply(txn: Txn) -> bool:
            held = txn.get(f"lease:{name}")
            now = self.clock()
            if held is not None and held["owner"] != owner and held["until"] > now:
                return False
            txn.set(f"lease:{name}", {"owner": owner, "until": now + seconds})
            return True

        return self.store.atomically(apply)

    def worker_heartbeat(self, worker_id: str, info: dict) -> None:
        self.store.atomically(
            lambda txn: txn.set(f"worker:{worker_id}", {**info, "seen": self.clock()})
        )

    def live_workers(self, within: float) -> list[dict]:
        now = self.clock()
        workers = (self.store.get(key) for key in self.store.keys("worker:"))
        return [w for w in workers if w is not None and now - w["seen"] <= within]


def summary(run: dict) -> dict:
    """A run as ``GET /runs/{job_id}`` shows it."""
    return {
        "run_id": run["run_id"],
        "job_id": run["job_id"],
        "model_name": run["model_name"],
        "model_version": run["model_version"],
        "status": run["status"],
        "trigger": run["trigger"],
        "created_at": run["created_at"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "attempts": run["attempts"],
        "worker": run["owner"],
        "frames_total": run["frames_total"],
        "frames_done": len(run["frames_done"]),
        "frames_failed": [
            {"frame": int(frame), "error": error}
            for frame, error in sorted(run["frames_failed"].items(), key=lambda kv: int(kv[0]))
        ],
        "shapes_written": run["shapes_written"],
        "shapes_removed": run["shapes_removed"],
        "shapes_skipped": run.get("shapes_skipped", 0),
        "errors": run["errors"],
    }
