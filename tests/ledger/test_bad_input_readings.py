"""Bad readings: every refusal names the field and the reason, and changes nothing.

A submit_readings transaction is applied reading by reading: a refused reading shows up in
``result.detail`` as ``["refused", code, field, reason]`` while the transaction itself is ok. A
batch with a bad shape fails as a whole (``result.ok`` is False, ``result.error`` is set). Each
refusal test applies a block holding only the bad input and compares the state root, the supply and
every account, device, lot and reading record before and after it.

Hand-computed figures (device dgc-1: 50 kW, tokyo, 450 g/kWh for FY2026 readings):

* capacity: 50,000 W x 1,800 s x 1.05 / 3,600 s/h = 26,250 Wh per 30 min; 4,375 Wh per 5 min;
  52,500 Wh per hour (the span of a reading after a one-slot gap).
* the ``fed`` reading at noon: G 20,000, I 0, E 5,000 Wh -> self-consumed 15,000 Wh -> 6,750 g.
  Its registers end at (1,020,000, 2,000,000, 305,000) Wh.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cbor2
import pytest

from crev.core.encoding import encode
from crev.core.metering import MAX_WH
from crev.ledger.events import ReadingAccepted, ReadingGap
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.revoke_device import RevokeDevice
from crev.ledger.messages.submit_readings import FIELDS, SubmitReadings, parse_reading
from crev.ledger.messages.update_device import UpdateDevice
from crev.ledger.tx import build_tx
from tests.ledger_kit import CHAIN, NOON, T0, Kit, key, make_kit

S1 = NOON + 1800  # 12:30 JST, the slot after the fed reading
S2 = NOON + 3600  # 13:00 JST
S3 = NOON + 5400  # 13:30 JST
LATER = NOON + 6 * 3600  # 18:00 JST: every afternoon interval has ended
LOT = "dgc-1:20260601T1200"
LOT_1230 = "dgc-1:20260601T1230"
COMMISSIONED = T0 - 86400 * 30
CERTIFIED_UNTIL = T0 + 86400 * 365 * 5
FED_REGS = (1_020_000, 2_000_000, 305_000)


# --- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    root: bytes
    supply: list[Any]
    accounts: dict[str, list[Any]]
    devices: dict[str, list[Any]]
    lots: dict[str, list[Any]]
    readings: dict[tuple[str, int], list[Any]]


def snapshot(kit: Kit) -> Snapshot:
    st = kit.state
    return Snapshot(
        kit.root(),
        st.supply.to_value(),
        {k: a.to_value() for k, a in st.accounts.items()},
        {k: d.to_value() for k, d in st.devices.items()},
        {k: lot.to_value() for k, lot in st.lots.items()},
        {k: r.to_value() for k, r in st.readings.items()},
    )


def assert_unchanged(kit: Kit, before: Snapshot) -> None:
    after = snapshot(kit)
    assert after.root == before.root, "state root changed"
    assert after.supply == before.supply, "supply changed"
    assert after.accounts == before.accounts, "an account (balance or nonce) changed"
    assert after.devices == before.devices, "a device record changed"
    assert after.lots == before.lots, "a lot changed"
    assert after.readings == before.readings, "a reading record changed"


def refuse(kit: Kit, reading: list[Any], code: str, field: str, phrase: str) -> str:
    """Submit one well-shaped reading alone in a block; it must be refused and change nothing.
    A batch with no reading accepted is refused as a whole, with that reading's error."""
    before = snapshot(kit)
    res = kit.one(kit.submit(reading))
    assert not res.ok and res.error is not None
    assert res.events == () and res.detail is None
    assert (res.error.code, res.error.field) == (code, field), res.error.to_dict()
    reason = res.error.reason
    assert phrase in reason, reason
    assert reason.endswith("(no reading of the 1 in this batch was accepted)"), reason
    assert_unchanged(kit, before)
    check_invariants(kit.state)
    return reason


def reject(kit: Kit, raw: bytes, field: str, phrase: str | tuple[str, ...], code: str = "malformed") -> str:
    """Apply ``raw`` alone in a block; the whole transaction must fail and change nothing.
    ``phrase`` may list alternatives, any one of which the reason must contain."""
    before = snapshot(kit)
    res = kit.one(raw)
    assert not res.ok
    assert res.error is not None
    assert (res.error.code, res.error.field) == (code, field), res.error.to_dict()
    phrases = (phrase,) if isinstance(phrase, str) else phrase
    assert any(p in res.error.reason for p in phrases), res.error.reason
    assert res.detail is None and res.events == ()
    assert_unchanged(kit, before)
    check_invariants(kit.state)
    return res.error.reason


def raw_body(body: Any) -> bytes:
    """A submit_readings transaction around an arbitrary body (no local shape check)."""
    return encode(["crev/tx/1", CHAIN, "submit_readings", "", 0, body, b""])


def raw_readings(*readings: list[Any]) -> bytes:
    return raw_body(list(readings))


def spare(kit: Kit, *args: Any, **kw: Any) -> list[Any]:
    """A reading that does not advance the kit's seq and register counters (it will be refused)."""
    seq = dict(kit.seq)
    regs = {d: list(v) for d, v in kit.regs.items()}
    r = kit.reading(*args, **kw)
    kit.seq.clear()
    kit.seq.update(seq)
    kit.regs.clear()
    kit.regs.update(regs)
    return r


def accepted(kit: Kit, reading: list[Any]) -> list[Any]:
    res = kit.one(kit.submit(reading))
    assert res.ok, res.error
    assert res.detail[0][0] == "accepted", res.detail
    return res.detail[0]


def operator_ok(kit: Kit, msg: Any) -> None:
    res = kit.one(kit.tx("operator", msg))
    assert res.ok, res.error


def register_dgc2(kit: Kit) -> None:
    operator_ok(kit, RegisterDevice("dgc-2", "other-co", key("dev/dgc-2").public_key, 50_000, COMMISSIONED,
                                    35_000_000, 139_000_000, "tokyo", "SN-0002", CERTIFIED_UNTIL, False,
                                    "solar_pv"))


@pytest.fixture
def kit() -> Iterator[Kit]:
    k = make_kit()
    yield k
    check_invariants(k.state)


@pytest.fixture
def fed(kit: Kit) -> Kit:
    """dgc-1 has one accepted reading (seq 1, noon, 6,750 g to sun-co); block time is 18:00."""
    kit.time = LATER
    assert accepted(kit, kit.reading(NOON, 20_000, 0, 5_000)) == ["accepted", LOT, 6_750]
    assert kit.regs["dgc-1"] == list(FED_REGS)
    return kit


# --- signatures and keys ---------------------------------------------------------------------


def test_reading_signed_by_another_key_is_refused(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000, signer=key("intruder"))
    refuse(fed, r, "bad_signature", "readings[0].signature", "not a valid signature by device dgc-1's key")
    assert fed.state.supply.issued_g == 6_750


def test_reading_changed_after_signing_is_refused(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    r[FIELDS.index("export_wh")] = 0  # more self-consumption than the device signed for
    refuse(fed, r, "bad_signature", "readings[0].signature", "not a valid signature")


def test_all_zero_signature_is_refused(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    r[12] = bytes(64)
    refuse(fed, r, "bad_signature", "readings[0].signature", "not a valid signature")


@pytest.mark.parametrize("sig", [b"", bytes(63), bytes(65), "signature", None, 0])
def test_missing_or_empty_signature_is_malformed(fed: Kit, sig: Any) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    r[12] = sig
    reject(fed, raw_readings(r), "readings[0].signature", "must be 64 bytes")


def test_reading_signed_by_another_devices_key_is_refused(fed: Kit) -> None:
    register_dgc2(fed)
    r = spare(fed, S1, 10_000, 0, 2_000, signer=key("dev/dgc-2"))
    refuse(fed, r, "bad_signature", "readings[0].signature", "not a valid signature by device dgc-1's key")
    r = spare(fed, NOON, 10_000, 0, 2_000, device="dgc-2", signer=key("dev/dgc-1"))
    refuse(fed, r, "bad_signature", "readings[0].signature", "not a valid signature by device dgc-2's key")


def test_reading_for_an_unknown_device_is_refused(fed: Kit) -> None:
    r = spare(fed, NOON, 10_000, 0, 2_000, device="dgc-9")
    refuse(fed, r, "not_found", "readings[0].device_id", "no device 'dgc-9'")


@pytest.mark.parametrize("device_id", ["DGC-1", "dgc 1", "-dgc", "", "d" * 65, "dgc-1/x"])
def test_a_malformed_device_id_is_malformed(fed: Kit, device_id: str) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000, device_id=device_id)
    reject(fed, raw_readings(r), "readings[0].device_id", "must be 1-64 of a-z 0-9 . _ -")


def test_a_device_id_with_a_trailing_newline_is_malformed(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000, device_id="dgc-1\n")
    reject(fed, raw_readings(r), "readings[0].device_id", "must be 1-64 of a-z 0-9 . _ -")


def test_reading_from_a_revoked_device_is_refused(fed: Kit) -> None:
    operator_ok(fed, RevokeDevice("dgc-1", b"", "decommissioned"))
    r = spare(fed, S1, 10_000, 0, 2_000)
    refuse(fed, r, "forbidden", "readings[0].device_id", "device 'dgc-1' is revoked")


def test_reading_signed_by_a_revoked_key_is_refused_whatever_its_interval(fed: Kit) -> None:
    operator_ok(fed, RevokeDevice("dgc-1", key("dev/dgc-1").public_key, "key leaked"))
    # S1 ended (12:30-13:00) long before the revocation block (18:00): still refused
    r = spare(fed, S1, 10_000, 0, 2_000)
    refuse(fed, r, "bad_signature", "readings[0].signature", "signed by a revoked device key")


def test_a_rotated_out_key_signs_only_intervals_that_ended_by_the_rotation(kit: Kit) -> None:
    old, new = key("dev/dgc-1"), key("dev/dgc-1/v2")
    kit.time = S1  # block at 12:30:10
    assert accepted(kit, kit.reading(NOON, 20_000, 0, 5_000))[2] == 6_750
    kit.time = S2 + 90  # rotation block at 13:01:40: S1 (12:30-13:00) has ended, S2 (13:00-13:30) has not
    operator_ok(kit, UpdateDevice("dgc-1", (("public_key", new.public_key),)))
    rotation = kit.time
    assert kit.state.devices["dgc-1"].keys[0].valid_until == rotation
    # the new key cannot sign an interval that ended before the rotation ...
    r = spare(kit, S1, 10_000, 0, 2_000, signer=new)
    refuse(kit, r, "bad_signature", "readings[0].signature", "not a valid signature by device dgc-1's key")
    # ... but a queued reading for S1 still verifies with the old key:
    # G 10,000 - E 2,000 = 8,000 Wh x 450 g/kWh = 3,600 g
    assert accepted(kit, kit.reading(S1, 10_000, 0, 2_000, signer=old)) == ["accepted", LOT_1230, 3_600]
    kit.time = S3  # blocks at 13:30:10 and later: S2 ended after the rotation
    r = spare(kit, S2, 8_000, 0, 0, signer=old)
    refuse(kit, r, "bad_signature", "readings[0].signature", "not a valid signature by device dgc-1's key")
    # the very same values signed with the new key: 8,000 Wh x 450 g/kWh = 3,600 g
    assert accepted(kit, kit.reading(S2, 8_000, 0, 0, signer=new))[2] == 3_600
    assert kit.state.supply.issued_g == 6_750 + 3_600 + 3_600


# --- sequence numbers and intervals ----------------------------------------------------------


def test_a_replayed_reading_alone_is_refused_and_issues_nothing(kit: Kit) -> None:
    kit.time = LATER
    r = kit.reading(NOON, 20_000, 0, 5_000)
    first = kit.one(kit.submit(r))
    assert first.detail == [["accepted", LOT, 6_750]]
    first_height = kit.state.height
    before = snapshot(kit)
    again = kit.one(kit.submit(r))
    assert not again.ok and again.error is not None
    assert (again.error.code, again.error.field) == ("conflict", "readings")
    assert again.error.reason == (
        "all 1 readings of this batch are already on the ledger, nothing new to record "
        f"(readings[0] was accepted at height {first_height}, lot '{LOT}')")
    assert again.events == ()
    assert_unchanged(kit, before)
    assert kit.state.supply.issued_g == 6_750
    assert kit.state.accounts["sun-co"].tradable_g == 6_750


def test_a_replayed_reading_beside_a_new_one_is_a_duplicate_with_its_first_lot(kit: Kit) -> None:
    kit.time = LATER
    r = kit.reading(NOON, 20_000, 0, 5_000)
    assert kit.one(kit.submit(r)).detail == [["accepted", LOT, 6_750]]
    r2 = kit.reading(NOON + 1800, 10_000, 0, 0)
    res = kit.one(kit.submit(r, r2))
    assert res.ok
    # the duplicate: its first lot again, marked so, and no event; the new one: 10,000 Wh × 450 / 1000
    assert res.detail == [["duplicate", LOT, 6_750], ["accepted", "dgc-1:20260601T1230", 4_500]]
    assert [type(e).__name__ for e in res.events] == ["Issued", "ReadingAccepted"]
    assert kit.state.supply.issued_g == 6_750 + 4_500


def test_a_reading_twice_in_one_batch_is_accepted_once_then_a_duplicate(kit: Kit) -> None:
    kit.time = LATER
    r = kit.reading(NOON, 20_000, 0, 5_000)
    res = kit.one(kit.submit(r, r))
    assert res.ok
    assert res.detail == [["accepted", LOT, 6_750], ["duplicate", LOT, 6_750]]
    assert sum(d[2] for d in res.detail if d[0] == "accepted") == kit.state.supply.issued_g == 6_750
    assert [type(e).__name__ for e in res.events] == ["Issued", "ReadingAccepted"]


def test_a_different_reading_with_a_used_seq_is_a_conflict(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000, seq=1)
    refuse(fed, r, "conflict", "readings[0].seq", "seq 1 was already used by a different reading")


def test_a_seq_lower_than_the_last_accepted_is_refused(fed: Kit) -> None:
    # seq 3 for 13:00 (seq 2 / 12:30 never arrived): accepted with a gap
    accepted(fed, fed.reading(S2, 10_000, 0, 0, seq=3))
    # seq 2 arrives late, even for a later interval: out of order
    r = spare(fed, S3, 10_000, 0, 0, seq=2)
    refuse(fed, r, "conflict", "readings[0].seq", "2 is not after the last accepted seq 3")


@pytest.mark.parametrize(("start", "interval_s"), [(NOON, 1800), (NOON + 900, 300), (NOON + 1500, 300)])
def test_a_new_reading_for_an_already_covered_interval_is_refused(fed: Kit, start: int, interval_s: int) -> None:
    r = spare(fed, start, 1_000, 0, 0, interval_s=interval_s)
    assert r[3] == 2  # a fresh seq
    refuse(fed, r, "conflict", "readings[0].interval_start",
           f"interval overlaps the last accepted reading, which ended at {S1}")


@pytest.mark.parametrize("offset", [1, 60, 900, 1799])
def test_interval_start_off_the_30_minute_grid_is_malformed(fed: Kit, offset: int) -> None:
    r = spare(fed, S1 + offset, 10_000, 0, 2_000)
    reject(fed, raw_readings(r), "readings[0].interval_start",
           f"{S1 + offset} is not on a 30-minute slot boundary")


@pytest.mark.parametrize("offset", [1, 60, 150, 299])
def test_interval_start_off_the_5_minute_grid_is_malformed(fed: Kit, offset: int) -> None:
    r = spare(fed, S1 + offset, 1_000, 0, 0, interval_s=300)
    reject(fed, raw_readings(r), "readings[0].interval_start", f"{S1 + offset} is not on a multiple of 300 s")


def test_a_5_minute_reading_on_its_grid_is_accepted(fed: Kit) -> None:
    # G 4,000 - E 1,000 = 3,000 Wh x 450 g/kWh = 1,350 g, lot named after 12:30
    assert accepted(fed, fed.reading(S1, 4_000, 0, 1_000, interval_s=300)) == ["accepted", LOT_1230, 1_350]


@pytest.mark.parametrize("interval_s", [0, 30, 700, 1799, 3600, 2**40])
def test_an_interval_length_not_allowed_is_malformed(fed: Kit, interval_s: int) -> None:
    r = spare(fed, S1, 1_000, 0, 0, interval_s=interval_s)
    reject(fed, raw_readings(r), "readings[0].interval_s", "must be whole minutes dividing 1800 s")


def test_an_interval_ending_too_far_in_the_future_is_refused(kit: Kit) -> None:
    assert kit.state.params.max_future_s == 300
    kit.time = S1 - 301 - 10  # the block is at 12:24:59; the noon interval ends at 12:30:00
    r = spare(kit, NOON, 20_000, 0, 5_000)
    refuse(kit, r, "rule_violation", "readings[0].interval_start",
           "interval ends 301 s after block time (allowed 300 s): timestamp in the future")
    # one second later the interval ends exactly 300 s after block time: accepted
    res = kit.block(kit.submit(r), dt=1)[0]
    assert res.detail == [["accepted", LOT, 6_750]]


# --- values ----------------------------------------------------------------------------------


def test_export_above_generation_is_malformed(fed: Kit) -> None:
    r = spare(fed, S1, 1_000, 0, 1_001)
    reject(fed, raw_readings(r), "readings[0].export_wh", "export 1001 Wh exceeds generation 1000 Wh")


@pytest.mark.parametrize("name", FIELDS[3:12])
def test_negative_values_are_malformed(fed: Kit, name: str) -> None:
    r = spare(fed, S1, 1_000, 0, 0, **{name: -1})
    reject(fed, raw_readings(r), f"readings[0].{name}", "must not be negative, found -1")


def test_a_huge_negative_value_is_malformed(fed: Kit) -> None:
    r = spare(fed, S1, 1_000, 0, 0, import_wh=-(2**64))  # the most negative CBOR integer
    reject(fed, raw_readings(r), "readings[0].import_wh", "must not be negative")


@pytest.mark.parametrize("name", FIELDS[3:12])
@pytest.mark.parametrize("value", [1.5, 1000.0, float("nan"), float("inf")])
def test_fractional_or_nan_values_are_malformed(fed: Kit, name: str, value: float) -> None:
    r = spare(fed, S1, 1_000, 0, 0, **{name: value})
    reject(fed, raw_readings(r), f"readings[0].{name}", "must be an integer, found a fraction or NaN")


@pytest.mark.parametrize("name", FIELDS[6:12])
@pytest.mark.parametrize("value", [MAX_WH + 1, 2**63, 2**64 - 1])
def test_values_above_the_meter_range_are_malformed(fed: Kit, name: str, value: int) -> None:
    r = spare(fed, S1, 1_000, 0, 0, **{name: value})
    reject(fed, raw_readings(r), f"readings[0].{name}", f"{value} exceeds the maximum 9999999999 Wh")


@pytest.mark.parametrize("seq", [0, 2**63, 2**64 - 1])
def test_a_seq_outside_1_to_2_63_is_malformed(fed: Kit, seq: int) -> None:
    r = spare(fed, S1, 1_000, 0, 0, seq=seq)
    reject(fed, raw_readings(r), "readings[0].seq", "must be 1 .. 2^63-1")


@pytest.mark.parametrize("start", [2**40 + 1800, 2**64 - 1])
def test_an_implausible_interval_start_is_malformed(fed: Kit, start: int) -> None:
    r = spare(fed, S1, 1_000, 0, 0, interval_start=start)
    reject(fed, raw_readings(r), "readings[0].interval_start", "is not a plausible unix time")


@pytest.mark.parametrize("name", ["seq", "interval_start", "interval_s", "generation_wh", "export_wh",
                                  "export_register_wh"])
def test_a_bool_where_an_int_is_expected_is_malformed(fed: Kit, name: str) -> None:
    r = spare(fed, S1, 1_000, 0, 0, **{name: True})
    reject(fed, raw_readings(r), f"readings[0].{name}", "must be an integer, found bool")


def test_generation_above_capacity_is_refused(kit: Kit) -> None:
    # 50,000 W x 1,800 s x 1.05 / 3,600 = 26,250 Wh
    kit.time = LATER
    r = spare(kit, NOON, 26_251, 0, 0)
    refuse(kit, r, "rule_violation", "readings[0].generation_wh",
           "26251 Wh exceeds what 50000 W can generate in 1800 s (26250 Wh with tolerance)")
    assert kit.state.supply.issued_g == 0


def test_generation_at_capacity_is_accepted(kit: Kit) -> None:
    # 26,250 Wh x 450 g/kWh = 11,812.5 g, rounded down
    kit.time = LATER
    assert accepted(kit, kit.reading(NOON, 26_250, 0, 0)) == ["accepted", LOT, 11_812]


def test_generation_above_capacity_in_5_minutes_is_refused(kit: Kit) -> None:
    # 50,000 W x 300 s x 1.05 / 3,600 = 4,375 Wh
    kit.time = LATER
    r = spare(kit, NOON, 4_376, 0, 0, interval_s=300)
    refuse(kit, r, "rule_violation", "readings[0].generation_wh", "(4375 Wh with tolerance)")
    assert accepted(kit, kit.reading(NOON, 4_375, 0, 0, interval_s=300))[2] == 1_968  # 4,375 x 0.45


# --- registers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("idx", "name"), [(0, "generation_register_wh"), (1, "import_register_wh"),
                                           (2, "export_register_wh")])
def test_a_register_going_backwards_is_refused(fed: Kit, idx: int, name: str) -> None:
    regs = [FED_REGS[0] + 1_000, FED_REGS[1] + 1_000, FED_REGS[2]]  # G 1,000, I 1,000, E 0
    regs[idx] = FED_REGS[idx] - 1
    r = spare(fed, S1, 1_000, 1_000, 0, regs=tuple(regs))
    refuse(fed, r, "rule_violation", f"readings[0].{name}",
           f"went backwards from {FED_REGS[idx]} to {FED_REGS[idx] - 1} Wh")


def test_a_register_rollover_near_the_modulus_is_accepted(kit: Kit) -> None:
    kit.time = LATER
    top = (9_999_990_000, 9_999_999_000, 9_999_995_000)  # all in the top tenth of 10**10
    assert accepted(kit, kit.reading(NOON, 20_000, 0, 5_000, regs=top))[2] == 6_750
    # +20,000 / +2,000 / +5,000 Wh wraps each register past 10**10
    wrapped = (10_000, 1_000, 0)
    assert accepted(kit, kit.reading(S1, 20_000, 2_000, 5_000, regs=wrapped)) == ["accepted", LOT_1230, 6_750]
    dev = kit.state.devices["dgc-1"]
    assert (dev.generation_register_wh, dev.import_register_wh, dev.export_register_wh) == wrapped


@pytest.mark.parametrize(("prev", "cur"), [(8_999_990_000, 10_000), (9_999_990_000, 1_000_000_000)])
def test_a_decrease_outside_the_rollover_window_is_refused(kit: Kit, prev: int, cur: int) -> None:
    # a rollover needs the old value in the top tenth (>= 9e9) and the new one in the bottom (< 1e9)
    kit.time = LATER
    accepted(kit, kit.reading(NOON, 20_000, 0, 5_000, regs=(prev, 2_000_000, 300_000)))
    r = spare(kit, S1, 20_000, 0, 0, regs=(cur, 2_000_000, 300_000))
    refuse(kit, r, "rule_violation", "readings[0].generation_register_wh", f"went backwards from {prev} to {cur}")


@pytest.mark.parametrize(("idx", "name"), [(0, "generation_register_wh"), (1, "import_register_wh"),
                                           (2, "export_register_wh")])
def test_a_register_advancing_more_than_a_contiguous_interval_is_refused(fed: Kit, idx: int, name: str) -> None:
    regs = [FED_REGS[0] + 10_000, FED_REGS[1] + 500, FED_REGS[2] + 2_000]
    regs[idx] += 1
    r = spare(fed, S1, 10_000, 500, 2_000, regs=tuple(regs))
    refuse(fed, r, "rule_violation", f"readings[0].{name}",
           "register delta differs from the interval value with no gap in between")


def test_a_register_advancing_less_than_the_interval_is_refused(fed: Kit) -> None:
    regs = (FED_REGS[0] + 19_999, FED_REGS[1], FED_REGS[2])
    r = spare(fed, S1, 20_000, 0, 0, regs=regs)
    refuse(fed, r, "rule_violation", "readings[0].generation_register_wh",
           "advanced 19999 Wh but the interval reports 20000 Wh")


def test_a_gap_is_accepted_with_a_gap_event_and_issues_from_the_interval_only(fed: Kit) -> None:
    # seq 2 (12:30) never arrives; seq 3 reports 13:00 with G 10,000, I 1,000, E 2,000 while the
    # registers also carry the unreported slot: +12,000 G, +500 I, +3,000 E
    regs = (FED_REGS[0] + 12_000 + 10_000, FED_REGS[1] + 500 + 1_000, FED_REGS[2] + 3_000 + 2_000)
    res = fed.one(fed.submit(fed.reading(S2, 10_000, 1_000, 2_000, seq=3, regs=regs)))
    # issued from the interval only: (10,000 - 2,000) Wh x 450 g/kWh = 3,600 g
    # (the registers' 22,000 - 5,000 = 17,000 Wh would have given 7,650 g)
    lot = "dgc-1:20260601T1300"
    assert res.detail == [["accepted", lot, 3_600]]
    gaps = [e for e in res.events if isinstance(e, ReadingGap)]
    assert gaps == [ReadingGap("dgc-1", 2, 2, S1, S2, 12_000, 500, 3_000)]
    acc = [e for e in res.events if isinstance(e, ReadingAccepted)]
    assert len(acc) == 1 and acc[0].self_consumed_wh == 8_000 and acc[0].demand_wh == 9_000
    assert fed.state.lots[lot].self_consumed_wh == 8_000
    assert fed.state.supply.issued_g == 6_750 + 3_600
    assert fed.state.accounts["sun-co"].tradable_g == 10_350


def test_a_gap_whose_registers_exceed_the_capacity_is_refused(fed: Kit) -> None:
    # 12:30-13:30 is one hour since the last reading: 50 kW x 1 h x 1.05 = 52,500 Wh at most
    too_much = (FED_REGS[0] + 42_501 + 10_000, FED_REGS[1], FED_REGS[2])
    r = spare(fed, S2, 10_000, 0, 0, seq=3, regs=too_much)
    refuse(fed, r, "rule_violation", "readings[0].generation_register_wh",
           "advanced more than the PV capacity allows since the last reading")
    just_fits = (FED_REGS[0] + 42_500 + 10_000, FED_REGS[1], FED_REGS[2])
    assert accepted(fed, fed.reading(S2, 10_000, 0, 0, seq=3, regs=just_fits))[2] == 4_500


def test_a_reading_before_commissioning_is_refused(kit: Kit) -> None:
    r = spare(kit, COMMISSIONED - 1800, 1_000, 0, 0)
    refuse(kit, r, "rule_violation", "readings[0].interval_start", "is before the device was commissioned")
    # the first interval starting at commissioning is fine: 1,000 Wh x 450 = 450 g
    assert accepted(kit, kit.reading(COMMISSIONED, 1_000, 0, 0))[2] == 450


def test_a_reading_after_certification_expiry_is_refused(kit: Kit) -> None:
    kit.time = CERTIFIED_UNTIL + 3600
    # the interval ending exactly at expiry is still covered: 1,000 Wh x 450 = 450 g
    assert accepted(kit, kit.reading(CERTIFIED_UNTIL - 1800, 1_000, 0, 0))[2] == 450
    r = spare(kit, CERTIFIED_UNTIL, 1_000, 0, 0)
    refuse(kit, r, "rule_violation", "readings[0].interval_start", "is after the meter's certification expired")


# --- bytes and envelope ----------------------------------------------------------------------


@pytest.mark.parametrize("raw", [random.Random(7).randbytes(200), random.Random(8).randbytes(33),
                                 b"", b"\xff", b"\x1c"], ids=["random200", "random33", "empty", "ff", "1c"])
def test_random_bytes_are_malformed(fed: Kit, raw: bytes) -> None:
    reject(fed, raw, "tx", "CBOR")


def test_truncated_cbor_is_malformed(fed: Kit) -> None:
    raw = fed.submit(spare(fed, S1, 10_000, 0, 2_000))
    for cut in (raw[:-1], raw[: len(raw) // 2], raw[:1]):
        reject(fed, cut, "tx", "not valid CBOR")
    assert fed.one(raw).detail[0][0] == "accepted"  # the untruncated bytes are fine


def test_trailing_bytes_after_a_tx_are_malformed(fed: Kit) -> None:
    raw = fed.submit(spare(fed, S1, 10_000, 0, 2_000))
    reject(fed, raw + b"\x00", "tx", "not in canonical CBOR form")


def _array(items: list[bytes]) -> bytes:
    assert len(items) < 24
    return bytes([0x80 + len(items)]) + b"".join(items)


def test_a_non_canonical_encoding_of_a_valid_tx_is_malformed(fed: Kit) -> None:
    r = fed.reading(S1, 10_000, 0, 2_000)
    canonical = fed.submit(r)
    head = ["crev/tx/1", CHAIN, "submit_readings", "", 0]
    variants = {}
    # seq 2 in a two-byte head (0x18 0x02) instead of one byte (0x02)
    items = [encode(x) for x in r]
    items[3] = b"\x18\x02"
    variants["long seq"] = _array([*map(encode, head), _array([_array(items)]), encode(b"")])
    # nonce 0 in a three-byte head (0x19 0x0000)
    env = [encode(x) for x in head]
    env[4] = b"\x19\x00\x00"
    variants["long nonce"] = _array([*env, encode([r]), encode(b"")])
    # the body as an indefinite-length array
    variants["indefinite body"] = _array([*map(encode, head), b"\x9f" + encode(r) + b"\xff", encode(b"")])
    for name, raw in variants.items():
        assert raw != canonical and encode(cbor2.loads(raw)) == canonical, name  # same tx, other bytes
        reject(fed, raw, "tx", "not in canonical CBOR form (RFC 8949 §4.2.1)")
    assert fed.one(canonical).detail == [["accepted", LOT_1230, 3_600]]


def test_a_tx_for_another_chain_is_malformed(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    raw = build_tx("other-chain", SubmitReadings((parse_reading(r, "readings[0]"),)))
    reject(fed, raw, "tx.chain_id", "is 'other-chain', this ledger is 'test-chain'")


def test_a_reading_for_another_chain_is_refused(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000, chain_id="other-chain")  # signed for the other chain
    refuse(fed, r, "malformed", "readings[0].chain_id", "is 'other-chain', this ledger is 'test-chain'")


def test_a_wrong_tx_version_is_malformed(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    raw = encode(["crev/tx/2", CHAIN, "submit_readings", "", 0, [r], b""])
    reject(fed, raw, "tx.version", "must be 'crev/tx/1'")


@pytest.mark.parametrize("version", ["crev/reading/2", "crev/reading/1 ", "", 1])
def test_a_wrong_reading_version_is_malformed(fed: Kit, version: Any) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000, version=version)
    reject(fed, raw_readings(r), "readings[0].version", "must be 'crev/reading/1'")


def test_an_unsigned_kind_carrying_a_signer_is_malformed(fed: Kit) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    raw = encode(["crev/tx/1", CHAIN, "submit_readings", "sun-co", 0, [r], b""])
    reject(fed, raw, "tx.signer", "submit_readings is unsigned")


@pytest.mark.parametrize("nonce", [False, 0.0, -0.0])
def test_an_unsigned_tx_with_a_bool_or_float_nonce_is_malformed(fed: Kit, nonce: Any) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    raw = encode(["crev/tx/1", CHAIN, "submit_readings", "", nonce, [r], b""])
    assert raw != raw_readings(r)
    reject(fed, raw, "tx.nonce", ("integer", "nonce 0"))


@pytest.mark.parametrize(("nonce", "sig", "field"), [(1, b"", "tx.nonce"), (0, bytes(64), "tx.signature")],
                         ids=["nonce", "signature"])
def test_an_unsigned_tx_with_a_nonce_or_signature_names_that_field(fed: Kit, nonce: int, sig: bytes,
                                                                    field: str) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    raw = encode(["crev/tx/1", CHAIN, "submit_readings", "", nonce, [r], sig])
    reject(fed, raw, field, "unsigned")


def test_a_batch_above_the_reading_limit_is_malformed(fed: Kit) -> None:
    limit = fed.state.params.max_batch_readings
    assert limit == 20_000
    r = spare(fed, S1, 10_000, 0, 2_000)
    reject(fed, raw_body([r] * (limit + 1)), "body", "20001 readings exceed the batch limit of 20000")


def test_a_tx_above_the_byte_limit_is_malformed(fed: Kit) -> None:
    limit = fed.state.params.max_tx_bytes
    assert limit == 4 * 1024 * 1024
    r = spare(fed, S1, 10_000, 0, 2_000, chain_id="x" * limit)
    raw = raw_readings(r)
    assert len(raw) > limit
    reject(fed, raw, "tx", f"{len(raw)} bytes exceeds the limit of {limit}")


def test_an_empty_batch_is_malformed(fed: Kit) -> None:
    reject(fed, raw_body([]), "body", "a batch must hold at least one reading")


@pytest.mark.parametrize("body", ["readings", 0, b"", None], ids=["text", "int", "bytes", "null"])
def test_a_body_that_is_not_an_array_is_malformed(fed: Kit, body: Any) -> None:
    reject(fed, raw_body(body), "body", "must be an array")


@pytest.mark.parametrize("n", [12, 14, 0])
def test_a_reading_without_13_elements_is_malformed(fed: Kit, n: int) -> None:
    r = spare(fed, S1, 10_000, 0, 2_000)
    r = r[:n] if n <= 13 else [*r, b""]
    reject(fed, raw_readings(r), "readings[0]", "must be an array of 13 elements")


# --- batches ---------------------------------------------------------------------------------


def test_a_malformed_reading_is_refused_alone_and_the_batch_goes_on(fed: Kit) -> None:
    good = fed.reading(S1, 10_000, 0, 2_000)
    bad = spare(fed, S2, 1_000, 0, 1_001, seq=3)
    res = fed.one(raw_readings(good, bad))
    assert res.ok
    assert res.detail == [
        ["accepted", LOT_1230, 3_600],
        ["refused", "malformed", "readings[1].export_wh", "export 1001 Wh exceeds generation 1000 Wh"],
    ]
    assert fed.state.supply.issued_g == 6_750 + 3_600


def test_a_500_reading_batch_refuses_each_bad_reading_alone_and_accepts_the_rest(kit: Kit) -> None:
    """A gateway's batch of 500 with one reading of every bad kind: each is refused at its index
    with its field, the 489 good 1-minute readings are accepted and issue 489 × 225 g, and the
    repeat of an earlier reading says ``duplicate``.

    Each good reading: G 600, I 100, E 100 Wh in 60 s (50 kW may give 875 Wh) → self-consumed
    500 Wh × 450 g/kWh = 225 g exactly, so nothing carries between readings."""
    kit.time = NOON + 12 * 3600
    good = [kit.reading(NOON + 60 * n, 600, 100, 100, interval_s=60) for n in range(489)]
    nxt = NOON + 60 * 489
    twelve = spare(kit, nxt, 600, 100, 100, interval_s=60)[:12]
    fraction = spare(kit, nxt, 600, 100, 100, interval_s=60)
    fraction[6] = 600.5
    negative = spare(kit, nxt, 600, 100, 100, interval_s=60)
    negative[7] = -1
    bad: dict[int, tuple[Any, tuple[str, str, str]]] = {
        3: (spare(kit, nxt, 600, 0, 601, interval_s=60), ("malformed", "export_wh", "exceeds generation")),
        50: (spare(kit, nxt, 600, 0, 0, interval_s=1200), ("malformed", "interval_s", "dividing 1800 s")),
        99: (spare(kit, nxt, 600, 0, 0, interval_s=60, seq=0), ("malformed", "seq", "must be 1 .. 2^63-1")),
        150: (spare(kit, nxt + 30, 600, 0, 0, interval_s=60), ("malformed", "interval_start", "is not on")),
        200: (spare(kit, nxt, 600, 0, 0, interval_s=60, chain_id="crev-other"),
              ("malformed", "chain_id", "this ledger is")),
        250: (twelve, ("malformed", "", "must be an array of 13 elements")),
        300: (fraction, ("malformed", "generation_wh", "must be an integer, found a fraction")),
        350: (spare(kit, nxt, 600, 0, 0, interval_s=60, signer=key("intruder")),
              ("bad_signature", "signature", "not a valid signature")),
        400: (spare(kit, nxt, 600, 0, 0, interval_s=60, device="dgc-nowhere"), ("not_found", "device_id", "no device")),
        450: (negative, ("malformed", "import_wh", "must not be negative")),
        499: (good[7], ("duplicate", "", "")),
    }
    batch: list[Any] = []
    it = iter(good)
    for i in range(500):
        batch.append(bad[i][0] if i in bad else next(it))
    before = kit.state.supply.issued_g
    res = kit.one(raw_readings(*batch))
    assert res.ok, res.error
    assert len(res.detail) == 500
    for i, d in enumerate(res.detail):
        if i not in bad:
            assert d[0] == "accepted" and d[2] == 225, (i, d)
            continue
        code, field, phrase = bad[i][1]
        if code == "duplicate":
            assert d == ["duplicate", res.detail[8][1], 225]  # good[7] sits at index 8 (after index 3)
            continue
        assert d[:3] == ["refused", code, f"readings[{i}].{field}" if field else f"readings[{i}]"], (i, d)
        assert phrase in d[3], (i, d)
    assert kit.state.supply.issued_g - before == 489 * 225
    assert kit.state.devices["dgc-1"].last_seq == 489
    assert kit.state.devices["dgc-1"].readings == 489
    assert sum(1 for e in res.events if isinstance(e, ReadingAccepted)) == 489
    check_invariants(kit.state)


def test_a_refused_reading_does_not_stop_the_others_in_its_batch(fed: Kit) -> None:
    good = fed.reading(S1, 10_000, 0, 2_000)
    forged = fed.reading(S2, 10_000, 0, 0, signer=key("intruder"))
    res = fed.one(fed.submit(good, forged))
    assert res.ok
    assert res.detail == [
        ["accepted", LOT_1230, 3_600],
        ["refused", "bad_signature", "readings[1].signature", "not a valid signature by device dgc-1's key"],
    ]
    assert fed.state.supply.issued_g == 6_750 + 3_600
    assert fed.state.accounts["sun-co"].tradable_g == 10_350
    assert fed.state.devices["dgc-1"].last_seq == 2


@pytest.mark.parametrize("name", ["seq", "interval_start", "generation_wh", "export_register_wh"])
@pytest.mark.parametrize("value", [2**64, 2**80, -(2**64) - 1])
def test_a_bignum_anywhere_is_refused_when_decoding(fed: Kit, name: str, value: int) -> None:
    r = spare(fed, S1, 1_000, 0, 0, **{name: value})
    reject(fed, raw_readings(r), "tx", f"holds CBOR tag {2 if value > 0 else 3}: tags")  # a bignum


def test_a_cbor_tag_anywhere_is_refused_when_decoding(fed: Kit) -> None:
    import datetime

    r = spare(fed, S1, 1_000, 0, 0, generation_wh=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    reject(fed, raw_readings(r), "tx", "holds CBOR tag 0: tags (shared values, dates")
