"""submit_meter_values: each smart-meter item judged on its own; every bad input names its field
and changes nothing (the state root stays)."""

from __future__ import annotations

from typing import Any

import pytest

from crev.core.units import SLOT_SECONDS
from crev.ledger.events import MeterValuesRecorded
from tests.ledger.meter_kit import meter, submit_meter
from tests.ledger_kit import CHAIN, NOON, T0, Kit, key


def test_an_item_is_recorded_in_its_slot_tally(kit: Kit) -> None:
    kit.time = NOON + 1800
    item = meter(NOON, 120, 2_000, resolution_wh=10, regs=(7_000_120, 900_000), meter_id="SM-0001")
    res = kit.one(submit_meter(item))
    assert res.ok and res.detail == [["accepted", "provisional"]]
    [e] = [e for e in res.events if type(e) is MeterValuesRecorded]
    assert (e.device_id, e.slot_id, e.import_wh, e.export_wh, e.import_register_wh, e.export_register_wh,
            e.resolution_wh, e.meter_id) == ("dgc-1", NOON // SLOT_SECONDS, 120, 2_000, 7_000_120, 900_000, 10,
                                             "SM-0001")
    t = kit.state.tallies[("dgc-1", NOON // SLOT_SECONDS)]
    assert (t.sm_import_wh, t.sm_export_wh, t.sm_resolution_wh, t.sm_hash) == (120, 2_000, 10, e.item_hash)
    assert kit.state.value_of(f"v/dgc-1/{NOON // SLOT_SECONDS}") is not None


def test_the_same_item_again_is_a_duplicate_and_a_different_one_a_conflict(kit: Kit) -> None:
    kit.time = NOON + 3600
    item = meter(NOON, 0, 2_000)
    kit.one(submit_meter(item))
    root = kit.root()
    res = kit.one(submit_meter(item))
    assert not res.ok and res.error is not None and res.error.code == "conflict"
    res = kit.one(submit_meter(item, meter(NOON, 0, 2_001)))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == ("conflict", "items[1].slot_start")
    assert kit.root() == root
    # a batch where one item is new: the duplicate says so, the new one is recorded
    res = kit.one(submit_meter(item, meter(NOON + 1800, 0, 10)))
    assert res.ok and res.detail == [["duplicate", "provisional"], ["accepted", "provisional"]]


def _refused(kit: Kit, item: Any, field: str, code: str) -> None:
    root = kit.root()
    res = kit.one(submit_meter(item))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == (code, field), res.error
    assert kit.root() == root
    assert not kit.state.tallies


@pytest.mark.parametrize(("override", "field", "code"), [
    ({"chain_id": "other"}, "items[0].chain_id", "malformed"),
    ({"slot_start": NOON + 60}, "items[0].slot_start", "malformed"),
    ({"export_register_wh": -1}, "items[0].export_register_wh", "malformed"),
    ({"import_register_wh": 1.5}, "items[0].import_register_wh", "malformed"),
    ({"resolution_wh": 0}, "items[0].resolution_wh", "malformed"),
    ({"resolution_wh": 100_001}, "items[0].resolution_wh", "malformed"),
    ({"meter_id": ""}, "items[0].meter_id", "malformed"),
    ({"meter_id": "x" * 65}, "items[0].meter_id", "malformed"),
    ({"version": "crev/meter/2"}, "items[0].version", "malformed"),
    ({"device_id": "nobody"}, "items[0].device_id", "not_found"),
])
def test_bad_fields_are_refused_by_name(kit: Kit, override: dict[str, Any], field: str, code: str) -> None:
    kit.time = NOON + 1800
    _refused(kit, meter(NOON, 0, 100, **override), field, code)


def test_a_forged_signature_is_refused(kit: Kit) -> None:
    kit.time = NOON + 1800
    _refused(kit, meter(NOON, 0, 100, signer=key("mallory")), "items[0].signature", "bad_signature")


def test_a_slot_in_the_future_is_refused(kit: Kit) -> None:
    kit.time = NOON
    _refused(kit, meter(NOON, 0, 100), "items[0].slot_start", "rule_violation")  # ends 1800 s ahead


def test_a_slot_before_commissioning_is_refused(kit: Kit) -> None:
    kit.time = NOON
    _refused(kit, meter(T0 - 86400 * 31, 0, 100), "items[0].slot_start", "rule_violation")


def test_a_malformed_item_does_not_hold_back_the_others(kit: Kit) -> None:
    kit.time = NOON + 1800
    res = kit.one(submit_meter([1, 2, 3], meter(NOON, 0, 100)))
    assert res.ok
    assert res.detail[0][:3] == ["refused", "malformed", "items[0]"]
    assert res.detail[1] == ["accepted", "provisional"]


def test_an_empty_batch_is_refused(kit: Kit) -> None:
    from crev.core.encoding import encode

    res = kit.one(encode(["crev/tx/1", CHAIN, "submit_meter_values", "", 0, [], b""]))
    assert not res.ok and res.error is not None and res.error.field == "body"
