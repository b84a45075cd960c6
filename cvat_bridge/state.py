"""What the bridge remembers, over a :mod:`.kv` store, one module per concept:

* :mod:`.job_records` -- jobs' last seen states, the decision an event leads to, run keys
  and the projects' subscriptions;
* :mod:`.run_records` -- runs, their leases and progress;
* :mod:`.ledger` -- the shapes each model wrote in a job, and how they looked;
* :mod:`.cluster_records` -- cluster-wide leases and worker heartbeats.

:class:`BridgeState` is all of them over one store and clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cvat_bridge.cluster_records import ClusterRecords
from cvat_bridge.job_records import Decision, JobRecords, ModelChoice
from cvat_bridge.kv import Store
from cvat_bridge.ledger import LedgerRecords
from cvat_bridge.run_records import (
    DONE,
    FAILED,
    OPEN_STATUSES,
    QUEUED,
    RUNNING,
    LostRunError,
    RunRecords,
    summary,
)

__all__ = [
    "DONE", "FAILED", "OPEN_STATUSES", "QUEUED", "RUNNING", "BridgeState", "Decision",
    "LostRunError", "ModelChoice", "summary",
]  # fmt: skip


class BridgeState(JobRecords, RunRecords, LedgerRecords, ClusterRecords):
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
