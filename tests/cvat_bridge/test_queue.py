"""The huey queue on both backends: only run ids travel; a write lock on the SQLite file or
a paused Redis makes ``ping`` and ``enqueue`` fail within the queue's timeout (a push that
timed out may still land later, which is why a run id queued twice must be harmless)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from cvat_bridge.queue import BridgeQueue
from tests.cvat_bridge.harness import RedisServer


def test_runs_are_queued_by_id_on_sqlite(tmp_path: Path) -> None:
    queue = BridgeQueue(str(tmp_path / "queue.sqlite"), timeout=0.5)
    queue.ping()
    queue.enqueue("run-a")
    queue.enqueue("run-b")
    assert queue.size() == 2
    holder = sqlite3.connect(tmp_path / "queue.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for call in (queue.ping, lambda: queue.enqueue("run-c")):
            started = time.monotonic()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                call()
            assert time.monotonic() - started < 2.5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert queue.size() == 2


def test_a_paused_redis_fails_within_the_timeout(redis_server: RedisServer) -> None:
    queue = BridgeQueue(redis_server.url, timeout=0.5)
    queue.enqueue("run-a")
    assert queue.size() == 1
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(Exception, match=r"[Tt]imeout|timed out"):
            queue.enqueue("run-b")
        assert time.monotonic() - started < 2.5
    finally:
        redis_server.resume()
    queue.ping()
    # the timed-out push may still land once Redis runs again: harmless, since a run is
    # claimed once whatever number of messages name it
    assert queue.size() in (1, 2)
