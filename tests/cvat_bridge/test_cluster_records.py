"""cvat_bridge.cluster_records on its own: a cluster-wide lease has one holder at a time,
even when many ask at once, and is renewed by its holder; worker heartbeats say which
workers are live -- over the SQLite file and a real Redis."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from cvat_bridge.cluster_records import ClusterRecords
from cvat_bridge.kv import Store
from tests.cvat_bridge.test_run_records import Clock, store_fixture  # noqa: F401 -- the fixture


class Cluster(ClusterRecords):
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock


def test_a_lease_has_one_holder_until_it_runs_out(store: Store) -> None:
    cluster = Cluster(store, Clock())
    assert cluster.take_lease("reconcile", "w1", 30)
    assert not cluster.take_lease("reconcile", "w2", 30)
    assert cluster.take_lease("reconcile-other", "w2", 30)  # leases are independent
    cluster.clock.now += 20
    assert cluster.take_lease("reconcile", "w1", 30)  # the holder renews: until 1050
    cluster.clock.now += 20
    assert not cluster.take_lease("reconcile", "w2", 30)  # renewed, so still held
    assert store.get("lease:reconcile") == {"owner": "w1", "until": 1050.0}
    cluster.clock.now = 1049.9
    assert not cluster.take_lease("reconcile", "w2", 30)  # held to its last instant
    cluster.clock.now = 1050.0
    assert cluster.take_lease("reconcile", "w2", 30)
    assert store.get("lease:reconcile")["owner"] == "w2"


def test_a_free_lease_asked_for_at_once_goes_to_one(store: Store) -> None:
    cluster = Cluster(store, Clock())
    barrier = threading.Barrier(8)

    def ask(i: int) -> bool:
        barrier.wait()
        return cluster.take_lease("reconcile", f"w{i}", 30)

    with ThreadPoolExecutor(8) as pool:
        granted = list(pool.map(ask, range(8)))
    assert granted.count(True) == 1
    assert store.get("lease:reconcile")["owner"] == f"w{granted.index(True)}"


def test_live_workers_are_those_heard_within_the_window(store: Store) -> None:
    cluster = Cluster(store, Clock())
    assert cluster.live_workers(60) == []
    cluster.worker_heartbeat("w1", {"pid": 11, "host": "a", "models": ["tiny"]})
    cluster.clock.now += 30
    cluster.worker_heartbeat("w2", {"pid": 12, "host": "b", "models": []})
    cluster.clock.now += 30  # w1 last heard 60 s ago: still live at the window's edge
    assert [w["pid"] for w in cluster.live_workers(60)] == [11, 12]
    assert cluster.live_workers(60)[0] == {
        "pid": 11, "host": "a", "models": ["tiny"], "seen": 1000.0,
    }  # fmt: skip
    cluster.clock.now += 1
    assert [w["pid"] for w in cluster.live_workers(60)] == [12]
    cluster.worker_heartbeat("w1", {"pid": 13, "host": "a", "models": []})  # restarted
    assert sorted(w["pid"] for w in cluster.live_workers(60)) == [12, 13]
    cluster.forget_worker("w2")
    cluster.forget_worker("never-seen")  # nothing to forget: fine
    assert [w["pid"] for w in cluster.live_workers(60)] == [13]
