"""cvat_bridge.storage on its own: opening the records and the queue gives two working
stores, and each way they can fail is a sentence naming the server or file and what to do
-- a Redis that is not there (its password never shown), a locked queue file -- and a Redis
that keeps nothing over a restart is refused, or run with a loud warning when allowed."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from cvat_bridge import storage
from cvat_bridge.kv import RedisStore, SqliteStore, StateFileError
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.storage import check_durable, open_storage
from tests.cvat_bridge.harness import RedisServer, free_port


def settings_for(tmp_path: Path, **changes) -> BridgeSettings:
    return BridgeSettings(cache_dir=tmp_path / "cache", **changes)


def test_the_embedded_storage_opens_beside_each_other(tmp_path: Path) -> None:
    store, queue = open_storage(settings_for(tmp_path), timeout=1.0)
    assert isinstance(store, SqliteStore) and isinstance(queue, BridgeQueue)
    assert store.path == tmp_path / "cache" / "queue-records.sqlite"
    assert queue.url == str(tmp_path / "cache" / "queue.sqlite")
    store.atomically(lambda txn: txn.set("job:1", {"state": "new"}))
    queue.enqueue("run-1")
    assert store.get("job:1") == {"state": "new"} and queue.size() == 1
    again, _ = open_storage(settings_for(tmp_path), timeout=1.0)  # the same files, reopened
    assert again.get("job:1") == {"state": "new"}
    check_durable(store, settings_for(tmp_path))  # SQLite with synchronous=FULL: durable


def test_a_shared_redis_holds_both(redis_url: str, tmp_path: Path) -> None:
    store, queue = open_storage(settings_for(tmp_path, queue_url=redis_url), timeout=1.0)
    assert isinstance(store, RedisStore)
    queue.enqueue("run-1")
    assert queue.size() == 1 and store.keys("") == []  # the queue's keys are not records
    check_durable(store, settings_for(tmp_path, queue_url=redis_url))  # appendonly yes
    assert not (tmp_path / "cache").exists()  # nothing written on the local disk


def test_a_redis_that_is_not_there_is_a_sentence_without_its_password(tmp_path: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/3"
    with pytest.raises(CoralsegError) as err:
        open_storage(settings_for(tmp_path, queue_url=url), timeout=1.0)
    message = str(err.value)
    assert message.startswith(f"the Redis at redis://***@127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert "is unreachable (ConnectionError): start it, or fix CORALSEG_QUEUE_URL" in message
    assert "hunter2" not in message and err.value.__cause__ is None


def test_a_locked_queue_file_is_named(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    open_storage(settings, timeout=1.0)  # creates both files
    queue_file = tmp_path / "cache" / "queue.sqlite"
    holder = sqlite3.connect(queue_file, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateFileError) as err:
            open_storage(settings, timeout=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(err.value).startswith(f"{queue_file} is locked by another process")
    assert "give this bridge its own CACHE_DIR" in str(err.value)
    open_storage(settings, timeout=0.3)  # free again


def test_the_records_are_closed_when_the_queue_cannot_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[SqliteStore] = []
    real_open_store = storage.open_store

    def recording_open_store(url: str, timeout: float):
        opened.append(real_open_store(url, timeout))
        return opened[-1]

    monkeypatch.setattr(storage, "open_store", recording_open_store)
    monkeypatch.setattr(storage, "BridgeQueue", _QueueThatCannotOpen)
    with pytest.raises(CoralsegError, match=r"the queue at .* is"):
        open_storage(settings_for(tmp_path), timeout=0.3)
    assert len(opened) == 1 and getattr(opened[0]._local, "conn", None) is None


class _QueueThatCannotOpen:
    def __init__(self, url: str, timeout: float) -> None:
        raise ConnectionError("no queue here")


def test_a_volatile_redis_is_refused_or_run_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volatile = RedisServer(tmp_path / "redis", durable=False).start()
    try:
        store = RedisStore(volatile.url, timeout=1.0)
        with pytest.raises(CoralsegError) as err:
            check_durable(store, settings_for(tmp_path, queue_url=volatile.url))
        assert "in memory only" in str(err.value) and "appendonly yes" in str(err.value)
        assert str(err.value).endswith("set CORALSEG_ALLOW_VOLATILE_STORE=1 to run anyway")
        allowed = settings_for(tmp_path, queue_url=volatile.url, allow_volatile_store=True)
        with caplog.at_level(logging.WARNING, logger="cvat_bridge.storage"):
            check_durable(store, allowed)
        (warning,) = caplog.records
        assert warning.levelno == logging.WARNING
        assert warning.getMessage().startswith("NOT DURABLE: Redis keeps its data in memory")
        store.close()
    finally:
        volatile.stop()
