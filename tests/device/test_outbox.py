"""The outbox (device/outbox.py): items and state in one durable transaction, delivery outcomes,
dead letters, alerts and health."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crev.device.outbox import Outbox


def test_durable_settings(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    mode = ob._db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = ob._db.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)  # 2 = FULL


def test_item_and_state_are_one_transaction(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.put("submit_readings", "seq 1", ["r", 1, b"\x00"], {"seq": 1}, 100, {"dgc": {"seq": 1}})
    # a state value that cannot be stored makes the whole put fail: the item is not kept either
    with pytest.raises(TypeError):
        ob.put("submit_readings", "seq 2", ["r", 2], {"seq": 2}, 200, {"dgc": {"seq": object()}})
    ob.close()
    ob = Outbox(tmp_path / "o.sqlite")  # reopened: what was committed is there, nothing else
    assert [p.ref for p in ob.pending("submit_readings", 10)] == ["seq 1"]
    assert ob.pending("submit_readings", 10)[0].item == ["r", 1, b"\x00"]
    assert ob.state()["dgc"] == {"seq": 1}


def test_done_failed_dead(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    for n in range(1, 5):
        ob.put("submit_readings", f"seq {n}", [n], {"seq": n}, n, {})
    ob.put("submit_controls", "control 1", ["c"], {}, 9, {})
    assert ob.depth() == {"submit_readings": 4, "submit_meter_values": 0, "submit_controls": 1}
    a, b, c, d = ob.pending("submit_readings", 10)
    ob.done([(a, "accepted"), (b, "duplicate")])
    ob.failed([c], "ConnectError")
    ob.dead(d, "bad_signature", "signature", "not a valid signature")
    assert [(p.ref, p.attempts) for p in ob.pending("submit_readings", 10)] == [("seq 3", 1)]
    assert ob.dead_letters() == [{"kind": "submit_readings", "ref": "seq 4", "dead_at": ob.dead_letters()[0]["dead_at"],
                                  "code": "bad_signature", "field": "signature", "reason": "not a valid signature"}]
    statuses = {r["ref"]: r["status"] for r in ob.log("submit_readings", 10)}
    assert statuses == {"seq 1": "accepted", "seq 2": "duplicate", "seq 3": "pending", "seq 4": "dead"}
    # the dead item keeps its bytes
    raw = sqlite3.connect(tmp_path / "o.sqlite").execute("SELECT item FROM dead").fetchone()[0]
    assert raw


def test_alerts_are_counted_not_repeated(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    assert ob.alert("site-1", "inverter x.energy_wh", "went back", 10) is True
    assert ob.alert("site-1", "inverter x.energy_wh", "went back", 20) is False
    assert ob.alerts() == [{"device": "site-1", "field": "inverter x.energy_wh", "reason": "went back",
                            "first_at": 10, "last_at": 20, "count": 2}]


def test_health_keeps_last_good_and_last_error(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.good("smart-meter a", 100)
    ob.bad("smart-meter a", "smart-meter a.EA", "no data", 130)
    ob.good("smart-meter a", 160)
    assert ob.health() == [{"device": "smart-meter a", "last_good_at": 160, "last_error_at": 130,
                            "last_error_field": "smart-meter a.EA", "last_error": "no data"}]


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.sqlite").put("transfer", "x", [], {}, 0, {})
