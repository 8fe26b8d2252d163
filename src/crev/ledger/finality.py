"""Finality of issued C-REV: provisional until the smart meter confirms it (or the window passes).

Derived, never swept: a slot's finality is its tally's status once reconciled (final, corrected,
late), else ``final`` once block time ``now`` ≥ slot end + ``final_after_s``, else
``provisional`` (see ``ledger/reconcile.py``). The market reads it for final-only bids, so it
sits below both.
"""

from __future__ import annotations

from crev.core.units import SLOT_SECONDS
from crev.ledger.records import FINAL, PROVISIONAL, Lot, SlotTally
from crev.ledger.state import State


def slot_finality(tally: SlotTally | None, slot_start: int, now: int, final_after_s: int) -> str:
    """provisional, final, corrected or late: what is known of a slot at block time ``now`` [s]."""
    if tally is not None and tally.status != PROVISIONAL:
        return tally.status
    return FINAL if now >= slot_start + SLOT_SECONDS + final_after_s else PROVISIONAL


def lot_finality(state: State, lot: Lot, now: int) -> str:
    """The finality of the slot ``lot`` belongs to, at block time ``now``."""
    return slot_finality(state.tallies.get((lot.device_id, lot.slot_id)), lot.slot_id * SLOT_SECONDS, now,
                         state.params.final_after_s)


def lot_is_final(state: State, lot: Lot, now: int) -> bool:
    return lot_finality(state, lot, now) != PROVISIONAL
