"""The demo's provisional / final / corrected row (crev/demo.py ``FinalityCounter``), kept from the
blocks' events, equals the scan of every slot tally it replaced, through readings, agreement,
corrections both ways, operator cancellations and top-ups, and slots whose window has passed.

Numbers from tests/ledger_kit.py: dgc-1 (sun-co) in tokyo at 450 g/kWh; 10,000 Wh generated with
2,000 Wh exported issues 3,600 g; the finality window is 86,400 s after a slot's end."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from crev.core.units import SLOT_SECONDS
from crev.demo import FinalityCounter
from crev.ledger.apply import BlockBuilder, BlockOutcome
from crev.ledger.messages.correct import Correct
from crev.ledger.reconcile import slot_finality
from crev.ledger.records import CORRECTED, PROVISIONAL
from crev.ledger.state import State
from tests import ledger_kit
from tests.ledger.meter_kit import meter, submit_meter
from tests.ledger_kit import NOON, Kit, make_kit

WINDOW = 86_400
S = [NOON + n * SLOT_SECONDS for n in range(5)]
LOTS = ["dgc-1:20260601T1200", "dgc-1:20260601T1230", "dgc-1:20260601T1300", "dgc-1:20260601T1330"]


def scan(st: State, now: int) -> Counter[str]:
    """The demo's previous computation: every slot tally, read under the node's lock."""
    totals: Counter[str] = Counter()
    for t in st.tallies.values():
        status = slot_finality(t, t.slot_start, now, st.params.final_after_s)
        totals[status if status in (PROVISIONAL, CORRECTED) else "final"] += t.issued_g - t.withdrawn_g
    return totals


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> tuple[Kit, FinalityCounter]:
    counter = FinalityCounter(WINDOW)

    class Counting(BlockBuilder):
        def finish(self) -> BlockOutcome:
            out = super().finish()
            counter.on_block(None, out)  # type: ignore[arg-type]
            return out

    monkeypatch.setattr(ledger_kit, "BlockBuilder", Counting)
    return make_kit(), counter


def totals(kit: Kit, counter: FinalityCounter, now: int) -> dict[str, int]:
    def lot_slot(lot_id: str) -> tuple[str, int] | None:
        lot = kit.state.lots.get(lot_id)
        return None if lot is None else (lot.device_id, lot.slot_id)

    got = counter.totals(now, lot_slot)
    assert +got == +scan(kit.state, now), now
    return {k: got[k] for k in (PROVISIONAL, "final", CORRECTED)}


def ok(kit: Kit, raw: bytes) -> Any:
    res = kit.one(raw)
    assert res.ok, res.error
    return res.detail


def test_the_counter_equals_the_scan_of_every_tally(counted: tuple[Kit, FinalityCounter]) -> None:
    kit, counter = counted
    kit.time = S[4]
    ok(kit, kit.submit(*(kit.reading(s, 10_000, 0, 2_000) for s in S[:4])))  # 4 × 3,600 g
    assert totals(kit, counter, kit.time) == {PROVISIONAL: 14_400, "final": 0, CORRECTED: 0}
    assert ok(kit, submit_meter(meter(S[0], 0, 2_030))) == [["accepted", "final"]]
    assert ok(kit, submit_meter(meter(S[1], 0, 3_000))) == [["accepted", "corrected"]]  # 450 g cancelled
    assert ok(kit, submit_meter(meter(S[2], 0, 1_000))) == [["accepted", "corrected"]]  # 450 g topped up
    ok(kit, kit.tx("operator", Correct("cancel", LOTS[3], 100, 0, "meter fault", "T-1", "sun-co")))
    ok(kit, kit.tx("operator", Correct("topup", LOTS[3], 200, 500, "missed", "T-2")))
    # provisional: slot 3 (3,600 − 100 + 200); final: slot 0; corrected: 3,150 + 4,050
    assert totals(kit, counter, kit.time) == {PROVISIONAL: 3_700, "final": 3_600, CORRECTED: 7_200}
    end3 = S[3] + SLOT_SECONDS + WINDOW
    assert totals(kit, counter, end3 - 1)[PROVISIONAL] == 3_700
    assert totals(kit, counter, end3) == {PROVISIONAL: 0, "final": 7_300, CORRECTED: 7_200}
    # the blocks pass every window: the slots close; a late meter value and a new slot follow
    kit.time = end3 + 3_600
    assert ok(kit, submit_meter(meter(S[3], 0, 3_000))) == [["accepted", "late"]]
    ok(kit, kit.submit(kit.reading(S[4], 10_000, 0, 2_000)))
    assert counter.height == kit.state.height
    assert totals(kit, counter, kit.time) == {PROVISIONAL: 0, "final": 10_900, CORRECTED: 7_200}
    # an operator's cancellation in a closed corrected slot stays corrected; one in a closed final slot final
    ok(kit, kit.tx("operator", Correct("cancel", LOTS[1], 50, 0, "audit", "T-3", "sun-co")))
    ok(kit, kit.tx("operator", Correct("cancel", LOTS[0], 30, 0, "audit", "T-4", "sun-co")))
    assert totals(kit, counter, kit.time) == {PROVISIONAL: 0, "final": 10_870, CORRECTED: 7_150}
    assert totals(kit, counter, kit.time + 10 * WINDOW) == {PROVISIONAL: 0, "final": 10_870, CORRECTED: 7_150}
