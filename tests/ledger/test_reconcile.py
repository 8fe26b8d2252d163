"""Reconciliation with the utility smart meter: provisional → final C-REV (ledger/reconcile.py).

Numbers from tests/ledger_kit.py: dgc-1 (sun-co) is a 50 kW site in tokyo at 450 g/kWh. The
tolerance is max(resolution + 10 Wh, 2 % of the smart meter's value); resolution 1 Wh here."""

from __future__ import annotations

from typing import Any

from crev.core.units import SLOT_SECONDS
from crev.ledger.events import (
    CalibrationDrift,
    Cancelled,
    DebtRecorded,
    DebtRepaid,
    Issued,
    SlotReconciled,
    Traded,
)
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.correct import Correct
from crev.ledger.messages.transfer import Transfer
from crev.ledger.params import Params
from crev.ledger.reconcile import lot_finality, slot_finality, tolerance_wh
from crev.ledger.records import Filter
from tests.ledger.market_kit import L1, make_market_kit, ok, order, run
from tests.ledger.meter_kit import meter, submit_meter
from tests.ledger_kit import NOON, Kit

LOT = "dgc-1:20260601T1200"
SLOT = NOON // SLOT_SECONDS


def events(res: Any, cls: type) -> list[Any]:
    return [e for e in res.events if type(e) is cls]


def tally(kit: Kit, start: int = NOON) -> Any:
    return kit.state.tallies[("dgc-1", start // SLOT_SECONDS)]


def test_tolerance_is_two_percent_or_the_resolution_plus_ten_wh() -> None:
    p = Params()
    assert tolerance_wh(2_030, 1, p) == 40  # 2 % of 2,030 = 40.6 → 40
    assert tolerance_wh(300, 1, p) == 11  # 2 % of 300 = 6 < 1 + 10
    assert tolerance_wh(300, 100, p) == 110


def test_agreement_within_tolerance_is_final_and_changes_nothing(kit: Kit) -> None:
    kit.time = NOON + 1800
    assert kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000))).detail == [["accepted", LOT, 3_600]]
    assert tally(kit).status == "provisional"
    res = kit.one(submit_meter(meter(NOON, 0, 2_030)))  # 30 Wh apart, 40 Wh allowed
    assert res.ok and res.detail == [["accepted", "final"]]
    [rec] = events(res, SlotReconciled)
    # target: 7,970 Wh × 0.45 = 3,586.5 → 3,586; within tolerance nothing changes
    assert (rec.status, rec.issued_g, rec.target_g, rec.tolerance_wh) == ("final", 3_600, 3_586, 40)
    assert not events(res, Cancelled) and not events(res, Issued)
    assert kit.state.accounts["sun-co"].tradable_g == 3_600
    assert lot_finality(kit.state, kit.state.lots[LOT], kit.time) == "final"
    check_invariants(kit.state)


def test_smart_meter_export_higher_cancels_the_excess_from_tradable_units(kit: Kit) -> None:
    kit.time = NOON + 1800
    kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000)))  # 8,000 Wh → 3,600 g
    res = kit.one(submit_meter(meter(NOON, 0, 3_000)))  # 7,000 Wh → 3,150 g
    assert res.detail == [["accepted", "corrected"]]
    [c] = events(res, Cancelled)
    assert (c.lot_id, c.holder, c.end_unit - c.start_unit, c.reason) == (LOT, "sun-co", 450, "reconciliation")
    [rec] = events(res, SlotReconciled)
    assert (rec.target_g, rec.cancelled_g, rec.debt_g, rec.topup_g) == (3_150, 450, 0, 0)
    assert kit.state.accounts["sun-co"].tradable_g == 3_150
    assert kit.state.supply.cancelled_g == 450
    t = tally(kit)
    assert (t.status, t.issued_g, t.withdrawn_g, t.target_g) == ("corrected", 3_600, 450, 3_150)
    check_invariants(kit.state)


def test_smart_meter_export_lower_tops_up_the_exact_difference(kit: Kit) -> None:
    kit.time = NOON + 1800
    kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000)))  # 3,600 g
    res = kit.one(submit_meter(meter(NOON, 0, 1_000)))  # 9,000 Wh → 4,050 g
    assert res.detail == [["accepted", "corrected"]]
    [iss] = events(res, Issued)
    assert (iss.lot_id, iss.quantity_g, iss.self_consumed_wh, iss.origin) == (LOT + "+1", 450, 1_000, "reconcile")
    top = kit.state.lots[LOT + "+1"]
    assert top.issued_to == "sun-co" and "smart meter" in top.reference
    assert kit.state.accounts["sun-co"].tradable_g == 4_050
    assert tally(kit).lots == [LOT, LOT + "+1"] and tally(kit).issued_g == 4_050
    check_invariants(kit.state)


def test_units_sold_or_given_away_become_a_debt_repaid_by_the_next_issuance(kit: Kit) -> None:
    kit.time = NOON + 1800
    kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000)))  # 3,600 g
    assert kit.one(kit.tx("sun-co", Transfer("buyer-co", ((LOT, 3_600),), "sold"))).ok
    res = kit.one(submit_meter(meter(NOON, 0, 3_000)))  # target 3,150: 450 g too many, none left to cancel
    [d] = events(res, DebtRecorded)
    assert (d.debt_g, d.total_debt_g) == (450, 450)
    assert not events(res, Cancelled)
    assert kit.state.devices["dgc-1"].debt_g == 450
    assert kit.state.accounts["buyer-co"].tradable_g == 3_600  # the buyer keeps what it bought
    check_invariants(kit.state)
    # the next slot issues 2,000 Wh → 900 g in full, then 450 g are cancelled at once
    kit.time = NOON + 3600
    res = kit.one(kit.submit(kit.reading(NOON + 1800, 2_000, 0, 0)))
    assert res.detail == [["accepted", "dgc-1:20260601T1230", 900]]
    [iss] = events(res, Issued)
    assert iss.quantity_g == 900
    [c] = events(res, Cancelled)
    assert (c.end_unit - c.start_unit, c.reason) == (450, "reconciliation debt")
    [r] = events(res, DebtRepaid)
    assert (r.lot_id, r.repaid_g, r.remaining_debt_g) == ("dgc-1:20260601T1230", 450, 0)
    dev = kit.state.devices["dgc-1"]
    assert (dev.debt_g, dev.debt_repaid_g) == (0, 450)
    assert kit.state.accounts["sun-co"].tradable_g == 450
    check_invariants(kit.state)


def test_escrowed_units_are_cancelled_from_the_open_offer_before_debt() -> None:
    kit = make_market_kit()  # L1: 10,000 Wh self-consumed, 4,500 g, export 0
    [oid, status, _filled, _n] = ok(kit, "sun-co", order("ask", 2_000, 4_400))
    assert status == "open"
    res = kit.one(submit_meter(meter(NOON, 0, 2_000)))  # 8,000 Wh → 3,600 g: 900 too many
    assert res.detail == [["accepted", "corrected"]]
    cancelled = [(c.holder, c.end_unit - c.start_unit) for c in events(res, Cancelled)]
    assert cancelled == [("sun-co", 100), ("sun-co", 800)]  # the 100 tradable, then 800 escrowed
    ask = kit.state.orders[oid]
    assert (ask.remaining_g, ask.lots) == (3_600, [[L1, 3_600]])
    assert kit.state.devices["dgc-1"].debt_g == 0
    check_invariants(kit.state)
    # the book knows: a bid for 4,000 g fills only the 3,600 left
    [_bid, _st, filled, _n] = ok(kit, "buyer-co", order("bid", 2_000, 4_000))
    assert filled == 3_600
    check_invariants(kit.state)


def test_a_meter_value_before_the_readings_reconciles_when_the_slot_completes(kit: Kit) -> None:
    kit.time = NOON + 1800
    res = kit.one(submit_meter(meter(NOON, 0, 3_000)))
    assert res.detail == [["accepted", "provisional"]] and not events(res, SlotReconciled)
    res = kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000)))
    assert res.detail == [["accepted", LOT, 3_600]]  # issued in full, then corrected in the same step
    [rec] = events(res, SlotReconciled)
    assert (rec.status, rec.target_g, rec.cancelled_g) == ("corrected", 3_150, 450)
    assert kit.state.accounts["sun-co"].tradable_g == 3_150
    check_invariants(kit.state)


def test_one_minute_readings_reconcile_only_when_the_slot_is_complete(kit: Kit) -> None:
    kit.time = NOON + 1800
    kit.one(submit_meter(meter(NOON, 0, 300)))
    first = [kit.reading(NOON + n * 60, 801, 0, 0, interval_s=60) for n in range(29)]
    res = kit.one(kit.submit(*first))
    assert not events(res, SlotReconciled)
    assert (tally(kit).covered_s, tally(kit).status) == (1_740, "provisional")
    res = kit.one(kit.submit(kit.reading(NOON + 29 * 60, 801, 0, 0, interval_s=60)))
    [rec] = events(res, SlotReconciled)
    # 30 × 801 = 24,030 Wh issued 10,813 g; the meter's 300 Wh export leaves 23,730 Wh → 10,678 g
    assert (rec.generation_wh, rec.issued_g, rec.target_g, rec.cancelled_g) == (24_030, 10_813, 10_678, 135)
    assert kit.state.accounts["sun-co"].tradable_g == 10_678
    check_invariants(kit.state)


def test_without_a_meter_a_slot_is_final_after_the_window_and_a_late_meter_changes_nothing(kit: Kit) -> None:
    kit.time = NOON + 1800
    kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000)))
    lot = kit.state.lots[LOT]
    window = NOON + SLOT_SECONDS + 86_400
    assert lot_finality(kit.state, lot, window - 1) == "provisional"
    assert lot_finality(kit.state, lot, window) == "final"
    assert slot_finality(None, NOON, window, 86_400) == "final"
    kit.time = window
    res = kit.one(submit_meter(meter(NOON, 0, 3_000)))  # far out of tolerance, but late
    assert res.detail == [["accepted", "late"]]
    [rec] = events(res, SlotReconciled)
    assert (rec.status, rec.cancelled_g, rec.topup_g) == ("late", 0, 0)
    assert not events(res, Cancelled)
    assert kit.state.accounts["sun-co"].tradable_g == 3_600
    assert kit.state.devices["dgc-1"].drift_slots == -1  # still counted for drift
    assert lot_finality(kit.state, lot, kit.time) == "late"


def test_three_slots_out_of_tolerance_the_same_way_raise_a_drift_alert(kit: Kit) -> None:
    kit.time = NOON + 4 * 1800
    for n in range(3):
        start = NOON + n * 1800
        kit.one(kit.submit(kit.reading(start, 10_000, 500, 2_000)))
        res = kit.one(submit_meter(meter(start, 500, 2_100)))  # DGC export 100 Wh low: out of 42 Wh
        drift = events(res, CalibrationDrift)
        assert kit.state.devices["dgc-1"].drift_slots == -(n + 1)
        assert bool(drift) == (n == 2)
    assert (drift[0].quantity, drift[0].dgc_wh, drift[0].smart_meter_wh, drift[0].consecutive) == \
        ("export", 2_000, 2_100, 3)
    assert kit.state.devices["dgc-1"].drift_alerts == 1
    start = NOON + 3 * 1800
    kit.one(kit.submit(kit.reading(start, 10_000, 500, 2_000)))
    kit.one(submit_meter(meter(start, 500, 2_000)))  # agrees: the count resets
    assert kit.state.devices["dgc-1"].drift_slots == 0
    check_invariants(kit.state)


def test_a_final_only_bid_skips_provisional_lots_and_takes_them_once_final() -> None:
    kit = make_market_kit()
    ok(kit, "sun-co", order("ask", 2_000, 1_000, lots=((L1, 1_000),)))
    final_only = Filter(final_only=True)
    [_b, status, filled, _n] = ok(kit, "buyer-co", order("bid", 3_000, 1_000, flt=final_only))
    assert (status, filled) == ("open", 0)  # L1 is provisional
    res = kit.one(submit_meter(meter(NOON, 0, 0)))  # agrees with the DGC: final
    assert res.detail == [["accepted", "final"]]
    res = run(kit, "buyer-2", order("bid", 3_000, 1_000, flt=final_only))
    assert res.ok and res.detail[2] == 1_000
    [t] = events(res, Traded)
    assert (t.buyer, t.ranges[0][0]) == ("buyer-2", L1)


def test_an_operator_correction_counts_in_the_tally(kit: Kit) -> None:
    kit.time = NOON + 1800
    kit.one(kit.submit(kit.reading(NOON, 10_000, 0, 2_000)))
    assert kit.one(kit.tx("operator", Correct("cancel", LOT, 450, 0, "meter fault", "T-1", "sun-co"))).ok
    assert tally(kit).withdrawn_g == 450
    res = kit.one(submit_meter(meter(NOON, 0, 3_000)))  # target 3,150: already there
    [rec] = events(res, SlotReconciled)
    assert (rec.status, rec.issued_g, rec.target_g, rec.cancelled_g) == ("final", 3_150, 3_150, 0)
    check_invariants(kit.state)
