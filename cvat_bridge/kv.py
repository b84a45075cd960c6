"""Durable JSON documents by key, with atomic read-modify-write across processes.

Two backends with one interface, chosen by the queue URL (:func:`open_store`):

* :class:`SqliteStore` -- one SQLite file (WAL, synchronous=FULL): several processes on one
  machine; a transaction is ``BEGIN IMMEDIATE`` ... ``COMMIT``.
* :class:`RedisStore` -- a Redis server shared by workers on several machines; a transaction
  is optimistic (``WATCH`` the keys read, ``MULTI``/``EXEC`` the writes, retried on conflict).

:meth:`atomically` runs ``fn(txn)``: ``txn.get`` reads, ``txn.set``/``txn.delete`` write, and
the writes land together or not at all. ``fn`` may run more than once (Redis conflicts), so
it must have no side effects beyond the transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Txn(Protocol):
    def get(self, key: str) -> Any | None: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


class Store(Protocol):
    def atomically(self, fn: Callable[[Txn], T]) -> T: ...
    def get(self, key: str) -> Any | None: ...
    def keys(self, prefix: str) -> list[str]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def open_store(queue_url: str) -> Store:
    """A Redis store for ``redis://`` URLs, else a SQLite file beside the queue's file."""
    if queue_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(queue_url)
    queue_path = Path(queue_url)
    return SqliteStore(queue_path.with_name(queue_path.stem + "-records.sqlite"))


class _SqliteTxn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, key: str) -> Any | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def delete(self, key: str) -> None:
        self.conn.execute("DELETE FROM kv WHERE key = ?", (key,))


class SqliteStore:
    """Documents in a SQLite file; safe for threads and for processes on one machine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def atomically(self, fn: Callable[[Txn], T]) -> T:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(_SqliteTxn(conn))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def get(self, key: str) -> Any | None:
        return _SqliteTxn(self._conn()).get(key)

    def keys(self, prefix: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key",
            (prefix, prefix + "\U0010ffff"),
        )
        return [row[0] for row in rows]

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _RedisTxn:
    def __init__(self, pipe, prefix: str) -> None:
        self.pipe = pipe
        self.prefix = prefix
        self.writes: dict[str, Any] = {}
        self.deleted: set[str] = set()

    def get(self, key: str) -> Any | None:
        if key in self.writes:
            return self.writes[key]
        if key in self.deleted:
            return None
        full = self.prefix + key
        self.pipe.watch(full)
        raw = self.pipe.get(full)
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self.deleted.discard(key)
        self.writes[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.writes.pop(key, None)
        self.deleted.add(key)


class RedisStore:
    """Documents in Redis under ``coralseg:bridge:``, shared by every worker."""

    prefix = "coralseg:bridge:"

    def __init__(self, url: str) -> None:
        import redis

        self._redis_module = redis
        self.client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)

    def atomically(self, fn: Callable[[Txn], T]) -> T:
        while True:
            with self.client.pipeline() as pipe:
                txn = _RedisTxn(pipe, self.prefix)
                try:
                    result = fn(txn)
                    pipe.multi()
                    for key, value in txn.writes.items():
                        pipe.set(self.prefix + key, json.dumps(value))
                    for key in txn.deleted:
                        pipe.delete(self.prefix + key)
                    pipe.execute()
                    return result
                except self._redis_module.WatchError:
                    continue

    def get(self, key: str) -> Any | None:
        raw = self.client.get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    def keys(self, prefix: str) -> list[str]:
        found = self.client.scan_iter(match=self.prefix + prefix + "*", count=500)
        return sorted(key.decode()[len(self.prefix) :] for key in found)

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        self.client.close()
