"""cvat_bridge.ledger on its own: which shape ids a model owns in a job and the fingerprints
of each frame's latest upload, read back as written, an older ledger without fingerprints
read as such, and one ledger per job and model -- over the SQLite file and a real Redis."""

from __future__ import annotations

import pytest

from cvat_bridge.kv import Store
from cvat_bridge.ledger import LedgerRecords, forget_ledger, update_ledger
from tests.cvat_bridge.test_run_records import Clock, store_fixture  # noqa: F401 -- the fixture


class Ledger(LedgerRecords):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = Clock()


def update(store: Store, created: dict, gone=(), prints=(), job=1, model="tiny") -> None:
    store.atomically(lambda txn: update_ledger(txn, job, model, created, gone, prints))


def test_an_unknown_job_has_an_empty_ledger(store: Store) -> None:
    ledger = Ledger(store)
    assert ledger.ledger(1, "tiny") == {} and ledger.ledger_prints(1, "tiny") == {}
    update(store, {}, gone=[5])  # nothing created, an unknown id gone: still empty
    assert ledger.ledger(1, "tiny") == {} and ledger.ledger_prints(1, "tiny") == {}


def test_prints_belong_to_their_frame_only(store: Store) -> None:
    ledger = Ledger(store)
    # frame 1's prefix "1|" must not take frame 10's "10|..." prints
    update(store, {11: 1, 12: 10}, prints=["1|a", "10|b", "10|c", "10|b", "7|orphan"])
    assert ledger.ledger(1, "tiny") == {11: 1, 12: 10}
    # frame 7 got no shape in this upload: its print is not kept
    assert ledger.ledger_prints(1, "tiny") == {1: {"1|a"}, 10: {"10|b", "10|c"}}


def test_a_frame_uploaded_again_keeps_only_its_latest_prints(store: Store) -> None:
    ledger = Ledger(store)
    update(store, {11: 1, 12: 2}, prints=["1|a", "2|b"])
    update(store, {13: 1}, gone=[11], prints=["1|new"])
    assert ledger.ledger(1, "tiny") == {12: 2, 13: 1}
    assert ledger.ledger_prints(1, "tiny") == {1: {"1|new"}, 2: {"2|b"}}
    update(store, {}, gone=[12])  # frame 2's last shape left: its prints go with it
    assert ledger.ledger(1, "tiny") == {13: 1}
    assert ledger.ledger_prints(1, "tiny") == {1: {"1|new"}}


def test_an_older_ledger_without_fingerprints_is_read_and_upgraded(store: Store) -> None:
    ledger = Ledger(store)
    store.atomically(lambda txn: txn.set("ledger:1:tiny", {"21": 0, "22": 3}))
    assert ledger.ledger(1, "tiny") == {21: 0, 22: 3}
    assert ledger.ledger_prints(1, "tiny") == {}  # looks not recorded: the source decides
    update(store, {23: 3}, gone=[22], prints=["3|x"])
    assert ledger.ledger(1, "tiny") == {21: 0, 23: 3}
    assert ledger.ledger_prints(1, "tiny") == {3: {"3|x"}}  # frame 0 still without prints
    assert set(store.get("ledger:1:tiny")) == {"shapes", "prints"}


def test_each_job_and_model_has_its_own_ledger(store: Store) -> None:
    ledger = Ledger(store)
    update(store, {1: 0}, prints=["0|a"], job=1, model="tiny")
    update(store, {2: 0}, prints=["0|b"], job=1, model="other")
    update(store, {3: 0}, prints=["0|c"], job=2, model="tiny")
    store.atomically(lambda txn: forget_ledger(txn, 1, "tiny"))
    assert ledger.ledger(1, "tiny") == {} and ledger.ledger_prints(1, "tiny") == {}
    assert ledger.ledger(1, "other") == {2: 0} and ledger.ledger(2, "tiny") == {3: 0}
    store.atomically(lambda txn: forget_ledger(txn, 9, "tiny"))  # nothing to forget: fine
    assert ledger.ledger_prints(2, "tiny") == {0: {"0|c"}}


def test_an_update_that_fails_leaves_the_ledger_as_it_was(store: Store) -> None:
    ledger = Ledger(store)
    update(store, {11: 1}, prints=["1|a"])

    def half_done(txn) -> None:
        update_ledger(txn, 1, "tiny", {12: 2}, [11], ["2|b"])
        raise RuntimeError("the commit of the batch failed")

    with pytest.raises(RuntimeError):
        store.atomically(half_done)
    assert ledger.ledger(1, "tiny") == {11: 1}
    assert ledger.ledger_prints(1, "tiny") == {1: {"1|a"}}
