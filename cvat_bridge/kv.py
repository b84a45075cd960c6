"""Durable JSON documents by key, with atomic read-modify-write across processes.

Two backends with one interface, chosen by the queue URL (:func:`open_store`):

* :class:`SqliteStore` -- one SQLite file (WAL, synchronous=FULL): several processes on one
  machine; a transaction is ``BEGIN IMMEDIATE`` ... ``COMMIT``.
* :class:`RedisStore` -- a Redis server shared by workers on several machines; a transaction
  is optimistic (``WATCH`` the keys read, ``MULTI``/``EXEC`` the writes, retried on conflict).

:meth:`atomically` runs ``fn(txn)``: ``txn.get`` reads, ``txn.set``/``txn.delete`` write, and
the writes land together or not at all. ``fn`` may run more than once (Redis conflicts), so
it must have no side effects beyond the transaction.

``timeout`` bounds how long a call waits for a locked SQLite file or a Redis that does not
answer: short on the web service's request path (CVAT gives up after 10 s), long in workers.
A state file that cannot be used raises :class:`StateFileError`, a sentence naming the file
and what to do. :meth:`durability` says whether what is written survives a restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from coral_core.errors import CoralsegError

T = TypeVar("T")
WORKER_TIMEOUT = 60.0


class StateFileError(CoralsegError):
    """The bridge's state file is corrupt, unwritable or held by another process."""


def sqlite_problem(path: Path, err: sqlite3.Error, timeout: float) -> StateFileError:
    """A sentence for what went wrong with the SQLite file ``path``, and what to do."""
    text = str(err).lower()
    if "locked" in text or "busy" in text:
        return StateFileError(
            f"{path} is locked by another process (waited {timeout:.0f} s): another bridge, "
            "or a tool holding a write transaction, is using it; stop that process, or give "
            "this bridge its own CACHE_DIR"
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return StateFileError(
            f"{path} cannot be written ({err}): give the bridge's user write access to the "
            "file and its folder, or set CACHE_DIR to a writable folder"
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StateFileError(
            f"{path} is not a usable SQLite database ({err}; a truncated or damaged file?): "
            "stop the bridge, move the file aside and start again -- the bridge starts with "
            "empty records, and the shapes it wrote stay in CVAT and are recognised"
        )
    return StateFileError(f"{path}: {err}")


def sqlite_can_write(guarded: Callable[[Callable[[sqlite3.Connection], Any]], Any]) -> None:
    """Start and roll back a write transaction through ``guarded(call)``."""

    def probe(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")

    guarded(probe)


def storage_problem(err: BaseException) -> str:
    """A short cause for ``/ready`` and 503 answers: locked, not answering, unreachable."""
    if isinstance(err, StateFileError):
        return str(err)
    text = str(err).lower()
    if "locked" in text or "busy" in text:
        return "locked by another process"
    if (
        isinstance(err, TimeoutError)
        or "timeout" in type(err).__name__.lower()
        or "timed out" in text
    ):
        return "not answering in time"
    return f"unreachable ({type(err).__name__})"


class Txn(Protocol):
    def get(self, key: str) -> Any | None: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


class Store(Protocol):
    def atomically(self, fn: Callable[[Txn], T]) -> T: ...
    def get(self, key: str) -> Any | None: ...
    def keys(self, prefix: str) -> list[str]: ...
    def ping(self) -> None: ...
    def durability(self) -> str | None: ...
    def close(self) -> None: ...


def open_store(queue_url: str, timeout: float = WORKER_TIMEOUT) -> Store:
    """A Redis store for ``redis://`` URLs, else a SQLite file beside the queue's file."""
    if queue_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(queue_url, timeout)
    queue_path = Path(queue_url)
    return SqliteStore(queue_path.with_name(queue_path.stem + "-records.sqlite"), timeout)


class _SqliteTxn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get(self, key: str) -> Any | None:
        row = self.conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            raise StateFileError(
                f"the record {key!r} in the bridge's state file is not JSON: the file was "
                "edited or damaged; move it aside and start the bridge again"
            ) from None

    def set(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def delete(self, key: str) -> None:
        self.conn.execute("DELETE FROM kv WHERE key = ?", (key,))


class SqliteStore:
    """Documents in a SQLite file; safe for threads and for processes on one machine."""

    def __init__(self, path: str | Path, timeout: float = WORKER_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StateFileError(
                f"cannot create {self.path.parent} for the bridge's state ({err.strerror}): "
                "set CACHE_DIR to a writable folder"
            ) from None
        self._local = threading.local()
        self._guarded(
            lambda conn: conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
        )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:
                conn.close()
                raise
            self._local.conn = conn
        return conn

    def _guarded(self, call: Callable[[sqlite3.Connection], T]) -> T:
        """``call(conn)``, with SQLite's errors turned into a sentence about the file."""
        try:
            return call(self._conn())
        except sqlite3.Error as err:
            raise sqlite_problem(self.path, err, self.timeout) from None

    def atomically(self, fn: Callable[[Txn], T]) -> T:
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(_SqliteTxn(conn))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._guarded(run)

    def get(self, key: str) -> Any | None:
        return self._guarded(lambda conn: _SqliteTxn(conn).get(key))

    def keys(self, prefix: str) -> list[str]:
        rows = self._guarded(
            lambda conn: conn.execute(
                "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                (prefix, prefix + "\U0010ffff"),
            ).fetchall()
        )
        return [row[0] for row in rows]

    def ping(self) -> None:
        """Raise unless a write could start now (a read succeeds under another's lock)."""
        sqlite_can_write(self._guarded)

    def durability(self) -> str | None:
        """None: every commit is on disk before it returns (WAL, synchronous=FULL)."""
        return None

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

    def __init__(self, url: str, timeout: float = WORKER_TIMEOUT) -> None:
        import redis

        self._redis_module = redis
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=min(5.0, timeout)
        )

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

    def durability(self) -> str | None:
        """None if Redis keeps its data over a restart (AOF or RDB snapshots on), else a
        sentence. A Redis whose CONFIG command is disabled cannot be checked: a sentence."""
        try:
            aof = self.client.config_get("appendonly").get("appendonly", "")
            save = self.client.config_get("save").get("save", "")
        except self._redis_module.ResponseError as err:
            return f"Redis does not say whether it persists its data ({err})"
        if str(aof).lower() == "yes" or str(save).strip():
            return None
        return (
            'Redis keeps its data in memory only (appendonly no, save ""): a restart empties '
            "the bridge's records and their ledger of the model's shapes"
        )

    def close(self) -> None:
        self.client.close()
