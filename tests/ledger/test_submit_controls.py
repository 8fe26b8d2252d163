"""submit_controls: what a DGC applied to its inverter and why, recorded per device seq."""

from __future__ import annotations

from typing import Any

import pytest

from crev.ledger.events import ControlRecorded
from tests.ledger.meter_kit import control, submit_controls
from tests.ledger_kit import CAPACITY_W, NOON, Kit, key


def test_a_control_record_is_stored_with_its_event(kit: Kit) -> None:
    kit.time = NOON + 1800
    item = control(1, NOON, applied_at=NOON + 5, limit_w=3_000, export_cap_w=0, reason="zero_export",
                   operator_limit_pct=-1)
    res = kit.one(submit_controls(item))
    assert res.ok and res.detail == [["accepted", 1]]
    rec = kit.state.controls[("dgc-1", 1)]
    assert (rec.slot_start, rec.applied_at, rec.limit_w, rec.export_cap_w, rec.reason) == \
        (NOON, NOON + 5, 3_000, 0, "zero_export")
    [e] = [e for e in res.events if type(e) is ControlRecorded]
    assert (e.device_id, e.seq, e.limit_w, e.reason, e.control_hash) == ("dgc-1", 1, 3_000, "zero_export",
                                                                         rec.control_hash)
    assert kit.state.devices["dgc-1"].last_control_seq == 1
    assert kit.state.value_of("c/dgc-1/1") is not None
    # released: no limit is stated as the rated capacity
    res = kit.one(submit_controls(item, control(2, NOON + 1800, limit_w=CAPACITY_W, reason="released")))
    assert res.detail == [["duplicate", 1], ["accepted", 2]]


def _refused(kit: Kit, items: list[Any], field: str, code: str) -> None:
    root = kit.root()
    res = kit.one(submit_controls(*items))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == (code, field), res.error
    assert kit.root() == root


@pytest.mark.parametrize(("override", "field", "code"), [
    ({"limit_w": -1}, "items[0].limit_w", "malformed"),
    ({"limit_w": CAPACITY_W + 1}, "items[0].limit_w", "rule_violation"),
    ({"export_cap_w": -2}, "items[0].export_cap_w", "malformed"),
    ({"reason": "because"}, "items[0].reason", "malformed"),
    ({"applied_at": NOON + 1800}, "items[0].applied_at", "malformed"),
    ({"applied_at": NOON - 1}, "items[0].applied_at", "malformed"),
    ({"slot_start": NOON + 60}, "items[0].slot_start", "malformed"),
    ({"operator_limit_pct": 101}, "items[0].operator_limit_pct", "malformed"),
    ({"operator_limit_pct": -2}, "items[0].operator_limit_pct", "malformed"),
    ({"export_value_milli_jpy_per_kwh": -1}, "items[0].export_value_milli_jpy_per_kwh", "malformed"),
    ({"version": "crev/control/2"}, "items[0].version", "malformed"),
    ({"device_id": "nobody"}, "items[0].device_id", "not_found"),
])
def test_bad_fields_are_refused_by_name(kit: Kit, override: dict[str, Any], field: str, code: str) -> None:
    kit.time = NOON + 1800
    _refused(kit, [control(1, NOON, **override)], field, code)


def test_seq_must_increase_and_signature_must_be_the_devices(kit: Kit) -> None:
    kit.time = NOON + 1800
    _refused(kit, [control(0, NOON)], "items[0].seq", "malformed")
    assert kit.one(submit_controls(control(5, NOON))).ok
    _refused(kit, [control(4, NOON)], "items[0].seq", "conflict")
    _refused(kit, [control(5, NOON, limit_w=1)], "items[0].seq", "conflict")
    _refused(kit, [control(6, NOON, signer=key("mallory"))], "items[0].signature", "bad_signature")


def test_applied_in_the_future_is_refused(kit: Kit) -> None:
    kit.time = NOON
    _refused(kit, [control(1, NOON, applied_at=NOON + 400)], "items[0].applied_at", "rule_violation")
