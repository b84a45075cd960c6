"""Runs: what a run is, who holds it, and how far it got.

* ``run:{id}`` -- a run (fields: :func:`create_run`); ``job-runs:{job}`` lists a job's runs;
  ``open-runs`` the queued and running ones.
* A worker holds a run by a lease (``owner``, ``lease_until``) that it renews; a run whose
  lease ran out (its worker was killed) is claimed again by another worker and resumes from
  the frames already committed.
* ``enqueued`` says whether the run's queue message was sent: a run is recorded, then
  queued, then marked enqueued. A run recorded but never queued (the queue's storage failed
  in between) is queued again by the retry of its event or by a worker's recovery.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cvat_bridge.kv import Store, Txn
from cvat_bridge.ledger import update_ledger

if TYPE_CHECKING:
    from cvat_bridge.events import JobEvent
    from cvat_bridge.job_records import ModelChoice

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
OPEN_STATUSES = (QUEUED, RUNNING)
MAX_ERRORS_KEPT = 50


class LostRunError(RuntimeError):
    """This worker no longer holds the run (its lease ran out and another worker took it)."""


def create_run(txn: Txn, event: JobEvent, model: ModelChoice, trigger: str, now: float) -> dict:
    """Record a new queued run of ``model`` on the event's job."""
    run = {
        "run_id": secrets.token_hex(8),
        "job_id": event.job_id,
        "job_created_date": event.created_date,
        "task_id": event.task_id,
        "project_id": event.project_id,
        "model_name": model.name,
        "model_version": model.version,
        "conv_mask_to_poly": model.conv_mask_to_poly,
        "trigger": trigger,
        "status": QUEUED,
        "enqueued": False,
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


def abandon(txn: Txn, run_id: str, now: float, reason: str) -> None:
    """End an open run that must not execute (its job is gone) as ``failed``."""
    run = txn.get(f"run:{run_id}")
    if run is None or run["status"] not in OPEN_STATUSES:
        return
    run.update(status=FAILED, finished_at=now, owner=None, lease_until=None, pending=None)
    run["errors"] = [*run["errors"], reason][-MAX_ERRORS_KEPT:]
    txn.set(f"run:{run_id}", run)
    txn.set("open-runs", [i for i in (txn.get("open-runs") or []) if i != run_id])


class RunRecords:
    store: Store
    clock: Callable[[], float]

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
                enqueued=True,  # its message arrived
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
            prints = (run["pending"] or {}).get("fingerprints", [])
            update_ledger(
                txn, run["job_id"], run["model_name"], created, [*removed, *forgotten], prints
            )
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

    def mark_enqueued(self, run_id: str) -> None:
        """The run's queue message was sent."""

        def apply(txn: Txn) -> None:
            run = txn.get(f"run:{run_id}")
            if run is not None and not run.get("enqueued", True):
                run["enqueued"] = True
                txn.set(f"run:{run_id}", run)

        self.store.atomically(apply)

    def take_unsent(self, run_id: str, older_than: float) -> bool:
        """Claim the sending of a queued run whose queue message was not confirmed for
        ``older_than`` seconds (so that one worker sends it); False if it is not one."""

        def apply(txn: Txn) -> bool:
            run = txn.get(f"run:{run_id}")
            now = self.clock()
            if run is None or run["status"] != QUEUED or run.get("enqueued", True):
                return False
            if now - run["queued_at"] <= older_than:
                return False
            run["queued_at"] = now
            txn.set(f"run:{run_id}", run)
            return True

        return self.store.atomically(apply)

    def release_owned_by(self, owner_prefix: str, reason: str) -> list[str]:
        """Give back to the queue the running runs of a worker known to be dead (its owner
        id starts with ``owner_prefix``), without waiting for their leases to run out.
        Returns their ids."""

        def apply(txn: Txn) -> list[str]:
            released = []
            for run_id in txn.get("open-runs") or []:
                run = txn.get(f"run:{run_id}")
                if run is None or run["status"] != RUNNING:
                    continue
                if not str(run["owner"] or "").startswith(owner_prefix):
                    continue
                run.update(
                    status=QUEUED,
                    owner=None,
                    lease_until=None,
                    queued_at=self.clock(),
                    enqueued=False,
                )
                run["errors"] = [*run["errors"], reason][-MAX_ERRORS_KEPT:]
                txn.set(f"run:{run_id}", run)
                released.append(run_id)
            return released

        return self.store.atomically(apply)


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
