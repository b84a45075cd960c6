"""The work queue, on huey: SQLite (embedded, the default) or Redis (shared by workers on
several machines), chosen by the queue URL alone.

Only a run id travels through the queue; everything else about a run lives in the run
records (:mod:`.state`), which is also what makes the queue's own delivery guarantees
sufficient: huey drops a task once a worker takes it, so a worker killed mid-run loses its
task, and the run -- still ``running`` with a lease that runs out -- is queued again by
another worker's recovery loop (:mod:`.worker`). A run id queued twice is harmless: a
worker claims a run only while it is claimable.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from huey import RedisHuey, SqliteHuey

from cvat_bridge.kv import WORKER_TIMEOUT, sqlite_can_write

QUEUE_NAME = "coralseg-bridge"

_runner: Callable[[str], None] | None = None


def set_runner(runner: Callable[[str], None] | None) -> None:
    """Install the function that executes a run in this (worker) process."""
    global _runner
    _runner = runner


def annotate_job(run_id: str) -> None:
    """The huey task: run ``run_id`` with the worker's runner."""
    if _runner is None:
        raise RuntimeError("this process has no bridge worker to execute runs")
    _runner(run_id)


class BridgeQueue:
    """A huey instance for ``queue_url`` with the ``annotate_job`` task registered.

    ``timeout`` bounds a wait for a locked SQLite file or a Redis that does not answer
    (short on the web service's request path)."""

    def __init__(self, queue_url: str, timeout: float = WORKER_TIMEOUT) -> None:
        self.url = queue_url
        self.timeout = timeout
        self._local = threading.local()
        if queue_url.startswith(("redis://", "rediss://", "unix://")):
            from redis import ConnectionPool

            pool = ConnectionPool.from_url(
                queue_url, socket_timeout=timeout, socket_connect_timeout=min(5.0, timeout)
            )
            self.huey = RedisHuey(QUEUE_NAME, connection_pool=pool, results=False)
        else:
            Path(queue_url).parent.mkdir(parents=True, exist_ok=True)
            self.huey = SqliteHuey(
                QUEUE_NAME, filename=queue_url, results=False, fsync=True, timeout=timeout
            )
        self.task = self.huey.task(name="annotate_job")(annotate_job)

    def enqueue(self, run_id: str, delay: float | None = None) -> None:
        if delay:
            self.task.schedule(args=(run_id,), delay=delay)
        else:
            self.task(run_id)

    def size(self) -> int:
        """Runs waiting in the queue (queued now, not counting delayed retries)."""
        return self.huey.pending_count()

    def ping(self) -> None:
        """Raise if the queue's storage cannot be reached or (SQLite) written now."""
        self.huey.pending_count()
        if isinstance(self.huey, SqliteHuey):
            sqlite_can_write(self._with_probe_connection)

    def _with_probe_connection(self, call: Callable[[sqlite3.Connection], None]) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.url, timeout=self.timeout, isolation_level=None)
            self._local.conn = conn
        call(conn)
