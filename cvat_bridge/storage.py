"""Opening the bridge's storage -- run records and queue -- with every way it can fail said
in a sentence naming the file or server and what to do, and its durability checked."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from coral_core.errors import CoralsegError
from cvat_bridge.kv import Store, open_store, sqlite_problem, storage_problem
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)


def open_storage(settings: BridgeSettings, timeout: float) -> tuple[Store, BridgeQueue]:
    """The records and the queue, checked: a sentence for each way they can fail."""
    store = open_store(settings.effective_queue_url, timeout)
    try:
        return store, _open_queue(settings, store, timeout)
    except BaseException:
        store.close()  # nothing else will: the caller never receives it
        raise


def _open_queue(settings: BridgeSettings, store: Store, timeout: float) -> BridgeQueue:
    try:
        store.ping()
    except CoralsegError:
        raise
    except Exception as err:
        raise CoralsegError(
            f"the Redis at {settings.describe()['queue']} is {storage_problem(err)}: start "
            "it, or fix CORALSEG_QUEUE_URL"
        ) from None
    try:
        queue = BridgeQueue(settings.effective_queue_url, timeout)
        queue.ping()
    except sqlite3.Error as err:
        raise sqlite_problem(Path(settings.effective_queue_url), err, timeout) from None
    except Exception as err:
        raise CoralsegError(
            f"the queue at {settings.describe()['queue']} is {storage_problem(err)}: start "
            "Redis, or fix CORALSEG_QUEUE_URL"
        ) from None
    return queue


def check_durable(store: Store, settings: BridgeSettings) -> None:
    """Refuse (or, when allowed, warn loudly about) a store that loses data on restart."""
    problem = store.durability()
    if problem is None:
        return
    advice = (
        "turn on its persistence (appendonly yes) -- CVAT's cvat_redis_inmem keeps nothing, "
        "so run a Redis of your own -- or use the embedded SQLite store on one machine"
    )
    if not settings.allow_volatile_store:
        raise CoralsegError(
            f"{problem}: {advice}; or set CORALSEG_ALLOW_VOLATILE_STORE=1 to run anyway"
        )
    log.warning("NOT DURABLE: %s; CORALSEG_ALLOW_VOLATILE_STORE=1 runs anyway: %s", problem,
                advice)  # fmt: skip
