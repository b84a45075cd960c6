"""A bridge worker: a huey consumer executing runs, plus a maintenance thread.

Maintenance, every ``recover_interval`` seconds:

* heartbeat -- ``worker:{id}`` in the records, with the models it has loaded (``/ready``);
* recovery -- runs ``running`` whose lease ran out (their worker died) go back to the
  queue; queued runs whose queue message was never confirmed (the queue failed after the
  run was recorded) are sent after ``UNSENT_AFTER`` seconds; at start, every queued run is
  queued again (duplicates are skipped at claim time);
* reconciliation, every ``reconcile_interval`` seconds, by one worker of the cluster at a
  time (a lease): the jobs of each project whose webhook the bridge has heard, or that
  ``CORALSEG_WATCH_PROJECTS`` names, are read from CVAT and applied like events
  (:mod:`.reconcile`), so a job created, assigned or set "in progress" while the bridge was
  down, or whose event was lost, is annotated now.

``python -m cvat_bridge.worker`` runs one worker process (what ``coralseg bridge`` starts);
:class:`Worker` also runs inside a test process (``install_signals=False``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time

from huey.consumer import Consumer

from coral_core.errors import CoralsegError
from cvat_bridge import queue as queue_module
from cvat_bridge.annotate import Annotator
from cvat_bridge.kv import WORKER_TIMEOUT
from cvat_bridge.reconcile import reconcile
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import QUEUED, RUNNING, BridgeState
from cvat_bridge.storage import open_storage

log = logging.getLogger(__name__)
REQUEUE_QUEUED_AFTER = 1800.0
UNSENT_AFTER = 30.0  # longer than the web service takes to queue a run it recorded


class _QuietConsumer(Consumer):
    """huey's consumer without its own signal handlers: the worker handles signals, and a
    consumer in a thread (tests) cannot install any."""

    def _set_signal_handlers(self) -> None:
        pass


class Worker:
    def __init__(
        self,
        settings: BridgeSettings,
        registry: ModelRegistry,
        worker_id: str | None = None,
        preload: bool = True,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.preload = preload
        self.stop_event = threading.Event()
        self.store, self.queue = open_storage(settings, WORKER_TIMEOUT)
        self.state = BridgeState(self.store)
        self.annotator = Annotator(
            settings, self.state, registry, self.queue, self.worker_id, self.stop_event
        )
        self.consumer: Consumer | None = None
        self._maintenance: threading.Thread | None = None

    def start(self) -> Worker:
        if self.preload:
            for name in self.registry.names:
                self.registry.predictor(name)
        queue_module.set_runner(self.annotator)
        self.requeue_open_runs()
        self.consumer = _QuietConsumer(
            self.queue.huey,
            workers=1,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            max_delay=0.5,
            scheduler_interval=1,
            check_worker_health=False,
        )
        self.consumer.start()
        self._maintenance = threading.Thread(
            target=self._maintain, daemon=True, name="bridge-maintenance"
        )
        self._maintenance.start()
        log.info("worker %s started (models: %s)", self.worker_id, ", ".join(self.registry.names))
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking runs; a run in progress is given back to the queue between frames."""
        self.stop_event.set()
        if self.consumer is not None:
            self.consumer.stop_flag.set()
            deadline = time.monotonic() + timeout
            for _, thread in self.consumer.worker_threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self.consumer.scheduler.join(max(0.0, deadline - time.monotonic()))
        if self._maintenance is not None:
            self._maintenance.join(timeout)
        queue_module.set_runner(None)

    # --- maintenance ----------------------------------------------------------------------

    def requeue_open_runs(self) -> int:
        """At start: queue every queued run again, and every running one whose lease ran
        out. Returns how many."""
        count = 0
        for run in self.state.open_runs():
            if run["status"] == QUEUED or self.state.requeue_expired(run["run_id"]):
                self.queue.enqueue(run["run_id"])
                self.state.mark_enqueued(run["run_id"])  # or recovery sends it once more
                count += 1
        if count:
            log.info("queued %d open run(s) again", count)
        return count

    def recover(self) -> int:
        """Queue again the runs whose worker died (lease ran out), and queued runs that
        waited very long (their queue message may be lost). Returns how many."""
        now = time.time()
        count = 0
        for run in self.state.open_runs():
            expired = run["status"] == RUNNING and (run["lease_until"] or 0) < now
            stale = run["status"] == QUEUED and now - run["queued_at"] > REQUEUE_QUEUED_AFTER
            unsent = run["status"] == QUEUED and not run.get("enqueued", True)
            if (
                (expired and self.state.requeue_expired(run["run_id"]))
                or (unsent and self.state.take_unsent(run["run_id"], UNSENT_AFTER))
                or (stale and self.state.touch_queued(run["run_id"], REQUEUE_QUEUED_AFTER))
            ):
                self.queue.enqueue(run["run_id"])
                self.state.mark_enqueued(run["run_id"])
                count += 1
        if count:
            log.info("recovered %d run(s) of stopped workers", count)
        return count

    def _heartbeat(self) -> None:
        self.state.worker_heartbeat(
            self.worker_id,
            {"pid": os.getpid(), "host": socket.gethostname(), "models": self.registry.loaded()},
        )

    def _maintain(self) -> None:
        interval = max(0.1, self.settings.recover_interval)
        next_reconcile = time.monotonic()
        while not self.stop_event.is_set():
            try:
                self._heartbeat()
                self.recover()
                period = self.settings.reconcile_interval
                if period > 0 and time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + period
                    if self.state.take_lease("reconcile", self.worker_id, period * 0.9):
                        reconcile(
                            self.settings, self.state, self.registry, self.queue, self.stop_event
                        )
            except Exception:
                log.exception("bridge maintenance failed; trying again in %.0f s", interval)
            self.stop_event.wait(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cvat_bridge.worker", description="One coralseg CVAT bridge worker."
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--lazy", action="store_true", help="load models on first use")
    parser.add_argument("--worker-id", help="this worker's id (its supervisor chooses it)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s worker %(process)d: %(message)s"
    )
    try:
        settings = BridgeSettings.from_env()
        settings.check_cvat()
        if settings.models_file is None:
            raise CoralsegError("CORALSEG_MODELS is not set: give the model registry file")
        registry = ModelRegistry.from_file(settings.models_file, device=settings.device)
        worker = Worker(settings, registry, worker_id=args.worker_id, preload=not args.lazy)
    except CoralsegError as err:
        print(f"cvat_bridge worker: error: {err}", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop_event.set())
    # Inference is batch work; answering CVAT within its 10 s timeout is not: on a shared
    # machine the web service gets the CPU first.
    os.nice(settings.worker_nice)
    worker.start()
    while not worker.stop_event.wait(1.0):
        if args.parent_pid and os.getppid() != args.parent_pid:
            log.warning("the bridge process %d is gone; stopping", args.parent_pid)
            break
    worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
