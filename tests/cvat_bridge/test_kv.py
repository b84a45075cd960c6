"""The record stores under faults: a damaged, unwritable or locked SQLite file is a sentence
naming the file and what to do, within the store's timeout; a paused Redis fails within its
timeout; a Redis that keeps nothing over a restart says so."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from cvat_bridge.kv import RedisStore, SqliteStore, StateFileError, storage_problem
from tests.cvat_bridge.harness import RedisServer


def test_a_damaged_state_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, it was overwritten" * 200)
    with pytest.raises(StateFileError, match="move the file aside") as err:
        SqliteStore(garbage)
    assert str(garbage) in str(err.value)

    truncated = tmp_path / "truncated.sqlite"
    store = SqliteStore(truncated)
    store.atomically(lambda txn: txn.set("job:1", {"state": "new"}))
    store.close()
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(StateFileError, match="not a usable SQLite database") as err:
        SqliteStore(truncated).get("job:1")
    assert str(truncated) in str(err.value)

    edited = SqliteStore(tmp_path / "edited.sqlite")
    edited._conn().execute("INSERT INTO kv VALUES ('job:1', '{half')")
    with pytest.raises(StateFileError, match=r"'job:1'.*not JSON"):
        edited.get("job:1")


def test_an_unusable_place_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "records.sqlite"
    folder.mkdir()  # a folder where the file should be: cannot be opened, even by root
    with pytest.raises(StateFileError, match="cannot be written") as err:
        SqliteStore(folder)
    assert str(folder) in str(err.value) and "CACHE_DIR" in str(err.value)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateFileError, match="cannot create"):
        SqliteStore(blocker / "cache" / "records.sqlite")


def test_a_locked_file_fails_within_the_timeout_and_says_locked(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    SqliteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = SqliteStore(path, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(StateFileError, match="locked by another process") as err:
            store.atomically(lambda txn: txn.set("job:1", {}))
        assert time.monotonic() - started < 3.0
        assert str(path) in str(err.value)
        assert storage_problem(err.value).startswith(str(path))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.atomically(lambda txn: txn.set("job:1", {"state": "new"}))
    assert store.get("job:1") == {"state": "new"}


def test_a_paused_redis_fails_within_the_timeout(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, timeout=1.0)
    store.atomically(lambda txn: txn.set("job:1", {"state": "new"}))
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(Exception) as err:
            store.get("job:1")
        assert time.monotonic() - started < 3.0
        assert storage_problem(err.value) == "not answering in time"
    finally:
        redis_server.resume()
    assert store.get("job:1") == {"state": "new"}


def test_durability_is_reported(redis_server: RedisServer, tmp_path: Path) -> None:
    assert SqliteStore(tmp_path / "records.sqlite").durability() is None
    assert RedisStore(redis_server.url).durability() is None  # append-only file on
    volatile = RedisServer(tmp_path / "volatile", durable=False).start()
    try:
        problem = RedisStore(volatile.url).durability()
        assert problem is not None and "in memory only" in problem
    finally:
        volatile.stop()
