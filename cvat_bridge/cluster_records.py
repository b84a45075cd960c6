"""Cluster-wide leases and worker heartbeats.

* ``lease:{name}`` -- ``{owner, until}``: one holder at a time (reconciliation).
* ``worker:{id}`` -- a worker's last heartbeat, with its pid, host and loaded models (what
  ``/ready`` counts).
"""

from __future__ import annotations

from collections.abc import Callable

from cvat_bridge.kv import Store, Txn


class ClusterRecords:
    store: Store
    clock: Callable[[], float]

    def take_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Hold the cluster-wide lease ``name`` for ``seconds`` unless another owner does."""

        def apply(txn: Txn) -> bool:
            held = txn.get(f"lease:{name}")
            now = self.clock()
            if held is not None and held["owner"] != owner and held["until"] > now:
                return False
            txn.set(f"lease:{name}", {"owner": owner, "until": now + seconds})
            return True

        return self.store.atomically(apply)

    def worker_heartbeat(self, worker_id: str, info: dict) -> None:
        self.store.atomically(
            lambda txn: txn.set(f"worker:{worker_id}", {**info, "seen": self.clock()})
        )

    def forget_worker(self, worker_id: str) -> None:
        """A worker known to be gone no longer counts as live."""
        self.store.atomically(lambda txn: txn.delete(f"worker:{worker_id}"))

    def live_workers(self, within: float) -> list[dict]:
        now = self.clock()
        workers = (self.store.get(key) for key in self.store.keys("worker:"))
        return [w for w in workers if w is not None and now - w["seen"] <= within]
