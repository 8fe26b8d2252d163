"""submit_readings: issuance per reading, the sub-gram carry within a slot, and batches.

Numbers from tests/ledger_kit.py: dgc-1 is a 50 kW site in tokyo at 450 g/kWh (FY2026)."""

from __future__ import annotations

from crev.core.units import SLOT_SECONDS
from tests.ledger_kit import NOON, Kit

MINUTE = 60


def test_one_minute_readings_of_a_slot_issue_what_one_slot_reading_would(kit: Kit) -> None:
    kit.time = NOON + 3600
    readings = [kit.reading(NOON + n * MINUTE, 801, 0, 0, interval_s=MINUTE) for n in range(30)]
    res = kit.one(kit.submit(*readings))
    assert res.ok
    # each minute: 801 Wh × 450 g/kWh = 360,450 mg. Floored one by one that is 30 × 360 = 10,800 g;
    # the slot as a whole is ⌊24,030 Wh × 450 / 1000⌋ = ⌊10,813.5⌋ = 10,813 g.
    issued = [q for _status, _lot, q in res.detail]
    assert sum(issued) == 10_813
    # the carry reaches a whole gram in the 3rd minute (3 × 450 mg = 1,350 mg), and so on
    assert issued[:3] == [360, 360, 361]
    assert kit.state.supply.issued_g == 10_813
    dev = kit.state.devices["dgc-1"]
    assert (dev.carry_slot, dev.carry_mg) == (NOON // SLOT_SECONDS, 500)  # 13,513,500 mg → 500 left


def test_the_carry_never_crosses_into_the_next_slot(kit: Kit) -> None:
    kit.time = NOON + 3600
    a = kit.reading(NOON + 29 * MINUTE, 801, 0, 0, interval_s=MINUTE)  # 360.45 g: 450 mg carried
    b = kit.reading(NOON + 30 * MINUTE, 801, 0, 0, interval_s=MINUTE)  # next slot: starts from 0
    res = kit.one(kit.submit(a, b))
    assert [q for _s, _l, q in res.detail] == [360, 360]
    dev = kit.state.devices["dgc-1"]
    assert (dev.carry_slot, dev.carry_mg) == (NOON // SLOT_SECONDS + 1, 450)


def test_a_sub_gram_reading_issues_no_lot_but_its_milligrams_count_later(kit: Kit) -> None:
    kit.time = NOON + 3600
    tiny = kit.reading(NOON, 2, 0, 0, interval_s=MINUTE)  # 2 Wh × 450 = 900 mg: no whole gram
    more = kit.reading(NOON + MINUTE, 2, 0, 0, interval_s=MINUTE)  # 900 + 900 = 1,800 mg → 1 g
    res = kit.one(kit.submit(tiny, more))
    assert res.detail == [["accepted", "", 0], ["accepted", "dgc-1:20260601T1201", 1]]
    assert kit.state.devices["dgc-1"].carry_mg == 800


def test_a_batch_with_nothing_accepted_is_refused_whole_and_changes_nothing(kit: Kit) -> None:
    kit.time = NOON + 3600
    root = kit.root()
    over = kit.reading(NOON, 30_000, 0, 0)  # above 26,250 Wh: refused
    res = kit.one(kit.submit(over))
    assert not res.ok and res.error is not None
    assert (res.error.code, res.error.field) == ("rule_violation", "readings[0].generation_wh")
    assert res.error.reason.endswith("(no reading of the 1 in this batch was accepted)")
    assert kit.state.devices["dgc-1"].readings == 0
    assert kit.state.supply.issued_g == 0
    assert kit.root() == root


def test_a_batch_with_one_good_reading_keeps_the_refusals_of_the_others(kit: Kit) -> None:
    kit.time = NOON + 3600
    good = kit.reading(NOON, 10_000, 0, 0)
    bad = kit.reading(NOON + SLOT_SECONDS, 30_000, 0, 0)
    res = kit.one(kit.submit(good, bad))
    assert res.ok
    assert res.detail[0] == ["accepted", "dgc-1:20260601T1200", 4_500]
    assert res.detail[1][:3] == ["refused", "rule_violation", "readings[1].generation_wh"]
