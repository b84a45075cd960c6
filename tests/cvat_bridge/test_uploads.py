"""Fingerprints and the decisions made with them: which of the model's earlier shapes a rerun
may delete (only those CVAT still holds exactly as uploaded), and which new shapes CVAT
already holds (never uploaded twice, even with the bridge's records lost)."""

from __future__ import annotations

from cvat_bridge.uploads import already_in_cvat, fingerprint, untouched


def shape(id: int, frame: int = 0, points=(1, 1, 9, 1, 5, 7), **fields) -> dict:
    return {"id": id, "frame": frame, "label_id": 3, "type": "polygon",
            "points": list(points), "source": "auto", "attributes": [], **fields}  # fmt: skip


def test_fingerprints_see_every_edit() -> None:
    base = fingerprint(shape(1))
    assert base.startswith("0|")
    assert fingerprint(shape(2)) == base  # the id is not what the shape looks like
    assert fingerprint(shape(1, points=(1, 1, 9, 1, 5, 7.001))) == base  # 1/100 pixel
    for edited in (
        shape(1, points=(1, 1, 9, 1, 5, 8)),
        shape(1, label_id=4),
        shape(1, frame=1),
        shape(1, attributes=[{"spec_id": 7, "value": "bleached"}]),
    ):
        assert fingerprint(edited) != base


def test_a_rerun_deletes_only_what_nobody_touched() -> None:
    uploaded = [shape(i, points=(i, i, 9, i, 5, 9)) for i in range(1, 6)]
    prints = {0: {fingerprint(s) for s in uploaded}}
    ledger = {s["id"]: 0 for s in uploaded}
    now = [
        uploaded[0],  # untouched
        {**uploaded[1], "attributes": [{"spec_id": 7, "value": "bleached"}]},  # still "auto"
        {**uploaded[2], "points": [3, 3, 7, 3, 5, 9], "source": "semi-auto"},
        {**uploaded[3], "label_id": 4},  # relabelled, source left "auto" by a script
    ]  # shape 5 was deleted by a person
    deletable, forgotten = untouched(ledger, prints, now)
    assert [s["id"] for s in deletable] == [1]
    assert sorted(forgotten) == [2, 3, 4, 5]


def test_a_ledger_without_fingerprints_falls_back_to_the_source() -> None:
    deletable, forgotten = untouched({1: 0, 2: 0}, {}, [shape(1), shape(2, source="semi-auto")])
    assert ([s["id"] for s in deletable], forgotten) == ([1], [2])


def test_shapes_already_in_cvat_are_adopted_not_uploaded_again() -> None:
    new = [shape(0), shape(0), shape(0, points=(2, 2, 8, 2, 5, 6))]  # two identical colonies
    in_cvat = [
        shape(11),  # one of the identical pair, written before the records were lost
        shape(12, points=(2, 2, 8, 2, 5, 6), source="manual"),  # a person's: not ours
        shape(13, points=(2, 2, 8, 2, 5, 6)),  # in the ledger: another decision's business
    ]
    to_create, adopted = already_in_cvat(new, in_cvat, known={13})
    assert adopted == {11: 0}
    assert [fingerprint(s) for s in to_create] == [fingerprint(new[1]), fingerprint(new[2])]
