"""Keeping local worker processes alive: a dead worker is restarted, with backoff, and the
runs it held go back to the queue at once (not when their leases run out).

A worker that exits with status 0 was asked to stop (SIGTERM to the whole process group,
as systemd and ``docker stop`` do) and is not restarted. The supervisor gives each worker
process an id (``--worker-id``) that it also uses as its
run-owner prefix, so the runs of a worker that died (SIGKILL, OOM) are found by owner.
``report()`` is what ``/health`` shows: how many workers are wanted and running, how often
they were restarted, and when the next restart is due.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cvat_bridge.kv import storage_problem
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.state import BridgeState

log = logging.getLogger(__name__)
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0
HEALTHY_AFTER = 60.0  # a worker that ran this long resets its slot's backoff


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen | None = None
    worker_id: str = ""
    started_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Start ``count`` workers with ``command(worker_id)``, and keep them running."""

    def __init__(
        self,
        command: Callable[[str], list[str]],
        count: int,
        state: BridgeState,
        queue: BridgeQueue,
        poll_interval: float = 0.5,
    ) -> None:
        self.command = command
        self.state = state
        self.queue = queue
        self.poll_interval = poll_interval
        self.slots = [_Slot(i) for i in range(count)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> Supervisor:
        for slot in self.slots:
            self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, daemon=True, name="supervisor")
        self._thread.start()
        return self

    def _spawn(self, slot: _Slot) -> None:
        slot.worker_id = f"{socket.gethostname()}:{os.getpid()}:w{slot.index}:{os.urandom(3).hex()}"
        slot.process = subprocess.Popen(self.command(slot.worker_id))
        slot.started_at = time.monotonic()
        slot.restart_at = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            for slot in self.slots:
                with self._lock:
                    self._check(slot)

    def _check(self, slot: _Slot) -> None:
        now = time.monotonic()
        if slot.restart_at is None:
            code = slot.process.poll()  # also reaps it: no zombie
            if code is None or code == 0 or self._stop.is_set():
                return  # 0: it was asked to stop (SIGTERM to the process group)
            ran = now - slot.started_at
            slot.backoff = FIRST_BACKOFF if ran >= HEALTHY_AFTER else slot.backoff
            slot.restart_at = now + slot.backoff
            log.error(
                "worker %s (pid %d) exited with %s after %.0f s; restarting it in %.0f s",
                slot.worker_id, slot.process.pid, code, ran, slot.backoff,
            )  # fmt: skip
            slot.backoff = min(MAX_BACKOFF, slot.backoff * 2)
            self._give_back(slot)
        if slot.restart_at is not None and now >= slot.restart_at and not self._stop.is_set():
            slot.restarts += 1
            self._spawn(slot)

    def _give_back(self, slot: _Slot) -> None:
        """The dead worker's runs go back to the queue, and it stops counting as live. If
        the storage fails here, the runs' leases run out and a worker's recovery takes
        them; a run released but not queued is sent by the recovery of unsent runs."""
        reason = f"worker {slot.worker_id} died; its run was given back to the queue"
        try:
            self.state.forget_worker(slot.worker_id)
            for run_id in self.state.release_owned_by(slot.worker_id, reason):
                self.queue.enqueue(run_id)
                self.state.mark_enqueued(run_id)
                log.info("run %s queued again (its worker died)", run_id)
        except Exception as err:
            log.warning("could not give back the runs of %s: %s", slot.worker_id,
                        storage_problem(err))  # fmt: skip

    def report(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            running = [s for s in self.slots if s.restart_at is None and s.process.poll() is None]
            waiting = [s.restart_at - now for s in self.slots if s.restart_at is not None]
            return {
                "wanted": len(self.slots),
                "running": len(running),
                "restarts": sum(s.restarts for s in self.slots),
                "next_restart_in": round(max(0.0, min(waiting)), 1) if waiting else None,
                "pids": [s.process.pid for s in running],
            }

    def kill(self) -> None:
        """Stop every worker now with SIGKILL (a second Ctrl-C or SIGTERM while stopping);
        :meth:`stop` then gives their runs back to the queue. Called from a signal handler
        while :meth:`stop` waits, so it only sends signals (no lock, no log)."""
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() is None:
                process.kill()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop watching, then ask every worker to stop (a run goes back between frames)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        processes = [s.process for s in self.slots if s.process is not None]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode < 0:
                # killed (SIGKILL after the timeout, or kill()): it gave nothing back itself
                log.warning("worker %s was killed while stopping", slot.worker_id)
                self._give_back(slot)
