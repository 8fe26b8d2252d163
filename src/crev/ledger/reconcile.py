"""Reconciling issued C-REV with the utility smart meter: provisional → final C-REV.

A DGC's readings issue C-REV at once, from its own meter (or CTs). The utility's smart meter is
the billing truth for grid import and export: its 30-minute fixed values (確定値; ECHONET Lite EA
import, EB export) reach the ledger through ``submit_meter_values``. Each device slot has a
*slot tally* (``SlotTally``, state key ``v/<device>/<slot_id>``) that sums what the slot's readings
measured and issued and holds the smart meter's values once they arrive.

**When.** A slot is reconciled as soon as it is complete (its readings cover 1800 s) *and* has
smart-meter values, whichever comes last. If that moment is at or after the slot's end +
``params.final_after_s``, the slot is ``late``: compared and counted for drift, never corrected.

**Tolerance** [Wh]: ``max(resolution_wh + reconcile_floor_wh, sm_wh × reconcile_tolerance_bp /
10000)``. The default 200 bp is the accuracy class of an ordinary Japanese watt-hour meter
(JIS C 1211 class 2, ±2 %); the floor covers the smart meter's register resolution.

**Correction**, when export is out of tolerance: the slot should stand at ``target_g =
co2_g_floor(max(0, generation_wh − sm_export_wh), factor)``. What stands is ``issued_g −
withdrawn_g``. Too much stands: the excess is cancelled (a) from units of the slot's lots the
issuing owner still holds tradable, then (b) from units the owner escrowed in an open offer (the
offer shrinks), and (c) the rest becomes a debt on the device, repaid from its next issuances (each
lot is issued in full, then the withheld units are cancelled at once). Too little stands: a
top-up lot ``<lot>+n`` (origin ``reconcile``) issues the difference. Never more than measured:
every figure is rounded down.

**Finality** is derived, never swept (``ledger/finality.py``, below the market, which reads it):
``slot_finality(tally, now, final_after_s)`` is the tally's status once reconciled (final,
corrected, late), else ``final`` once ``now`` ≥ slot end + ``final_after_s``, else
``provisional``.

**Calibration drift**: consecutive reconciled slots of a device out of tolerance in the same
direction (export first, else import) count on ``Device.drift_slots`` (+ DGC above, − below the
meter); reaching ``params.drift_alert_slots`` emits ``CalibrationDrift``. A slot within tolerance
on both resets it.
"""

from __future__ import annotations

from typing import Any

from crev.core.units import SLOT_SECONDS, co2_g_floor, slot_id
from crev.errors import NotFoundError
from crev.ledger.events import CalibrationDrift, Cancelled, DebtRecorded, DebtRepaid, SlotReconciled
from crev.ledger.finality import lot_finality, lot_is_final, slot_finality
from crev.ledger.holdings import available, move_units, shift_balance
from crev.ledger.issuance import fiscal_year_cached, issue_lot, lot_id_for, lot_label
from crev.ledger.params import Params
from crev.ledger.records import (
    CANCELLED,
    CORRECTED,
    ESCROWED,
    FINAL,
    LATE,
    OPEN,
    PROVISIONAL,
    TRADABLE,
    Device,
    Lot,
    SlotTally,
)
from crev.ledger.state import State
from crev.ledger.trading import close_order

__all__ = ["lot_finality", "lot_is_final", "slot_finality"]  # re-exported: finality is part of this story

RECONCILE_REASON = "reconciliation"
DEBT_REASON = "reconciliation debt"


def tolerance_wh(sm_wh: int, resolution_wh: int, params: Params) -> int:
    """The largest |DGC − smart meter| [Wh] still in agreement for a smart-meter value ``sm_wh``."""
    return max(resolution_wh + params.reconcile_floor_wh, sm_wh * params.reconcile_tolerance_bp // 10_000)


def tally_for(state: State, device_id: str, slot_start: int) -> SlotTally:
    """The tally of the slot starting at ``slot_start``, created empty if need be (and marked)."""
    k = (device_id, slot_id(slot_start))
    t = state.tallies.get(k)
    if t is None:
        t = state.tallies[k] = SlotTally(slot_id(slot_start) * SLOT_SECONDS)
    state.mark(f"v/{device_id}/{k[1]}")
    return t


def count_lot(state: State, lot: Lot) -> SlotTally:
    """Add a newly issued lot (a reading's or a top-up) to its slot's tally."""
    t = tally_for(state, lot.device_id, lot.interval_start)
    t.lots.append(lot.lot_id)
    t.issued_g += lot.quantity_g
    if not t.factor_g_per_kwh:
        t.factor_g_per_kwh = lot.factor_g_per_kwh
    return t


def _cancel(ctx: Any, lot: Lot, holder: str, status: str, quantity: int, reason: str, reference: str,
            from_ref: str | None = None) -> None:
    st: State = ctx.state
    for h, a, b in move_units(lot, holder, status, quantity, None, CANCELLED, f"{reason} [{reference}]", from_ref):
        shift_balance(st.accounts[h], status, CANCELLED, b - a)
        ctx.emit(Cancelled(lot.lot_id, h, a, b, reason, reference))
    st.mark(f"a/{holder}")
    st.mark(f"l/{lot.lot_id}")
    if status == TRADABLE:
        st.supply.tradable_g -= quantity
    else:
        st.supply.escrowed_g -= quantity
    st.supply.cancelled_g += quantity
    st.mark("s")


def repay_debt(ctx: Any, dev: Device, lot: Lot) -> None:
    """Cancel at once what the device owes (up to the new lot's tradable units)."""
    if dev.debt_g <= 0:
        return
    take = min(dev.debt_g, available(lot, lot.issued_to, TRADABLE))
    if take <= 0:
        return
    _cancel(ctx, lot, lot.issued_to, TRADABLE, take, DEBT_REASON, f"device {dev.device_id}")
    dev.debt_g -= take
    dev.debt_repaid_g += take
    ctx.state.mark(f"d/{dev.device_id}")
    ctx.emit(DebtRepaid(dev.device_id, lot.lot_id, take, dev.debt_g))


def _cancel_escrowed(ctx: Any, lot: Lot, need: int, reference: str) -> int:
    """Cancel up to ``need`` units of ``lot`` its issuing owner escrowed in open offers, shrinking
    those offers (and their book entries). Returns the units cancelled."""
    st: State = ctx.state
    owner = lot.issued_to
    done = 0
    refs: list[str] = []
    for s in lot.segments:
        if s.status == ESCROWED and s.holder == owner and s.ref not in refs:
            refs.append(s.ref)
    for ref in refs:
        if done >= need:
            break
        order = st.orders.get(ref)
        if order is None or order.status != OPEN:
            continue
        take = min(need - done, sum(s.size for s in lot.segments
                                    if s.status == ESCROWED and s.holder == owner and s.ref == ref))
        _cancel(ctx, lot, owner, ESCROWED, take, RECONCILE_REASON, f"{reference}; offer {ref}", from_ref=ref)
        for entry in order.lots:
            if entry[0] == lot.lot_id:
                entry[1] -= take
        order.remaining_g -= take
        book = st.books.get(order.market_id)
        if book is not None:
            left = take
            for e in book.by_order.get(ref, ()):
                if e.lot_id == lot.lot_id and left:
                    cut = min(left, e.qty)
                    e.qty -= cut
                    left -= cut
        st.mark(f"o/{ref}")
        if order.remaining_g == 0:
            close_order(ctx, order, "reconciled")
        done += take
    return done


def withdraw(ctx: Any, dev: Device, tally: SlotTally, excess: int, reference: str) -> tuple[int, int]:
    """Take ``excess`` units back from a slot: cancel tradable, then escrowed units of its lots,
    then record the rest as debt. Returns (cancelled, debt)."""
    st: State = ctx.state
    left = excess
    lots = [st.lots[lid] for lid in tally.lots]
    for lot in lots:  # (a) what the issuing owner still holds tradable
        take = min(left, available(lot, lot.issued_to, TRADABLE))
        if take > 0:
            _cancel(ctx, lot, lot.issued_to, TRADABLE, take, RECONCILE_REASON, reference)
            left -= take
    for lot in lots:  # (b) what the owner offers in an open ask
        if left > 0:
            left -= _cancel_escrowed(ctx, lot, left, reference)
    debt = left  # (c) sold or retired: a debt on the device
    if debt:
        dev.debt_g += debt
        tally.debt_g += debt
        st.mark(f"d/{dev.device_id}")
        ctx.emit(DebtRecorded(dev.device_id, slot_id(tally.slot_start), debt, dev.debt_g))
    tally.withdrawn_g += excess
    return excess - debt, debt


def _topup(ctx: Any, dev: Device, tally: SlotTally, quantity: int, wh: int, reference: str) -> Lot:
    st: State = ctx.state
    base = tally.lots[0] if tally.lots else lot_id_for(dev.device_id, tally.slot_start)
    n = 1
    while f"{base}+{n}" in st.lots:
        n += 1
    if tally.lots:
        factor_ref = st.lots[tally.lots[0]].factor_ref
    else:  # reconcile() found this row just before
        row = st.factors.lookup(dev.grid_area, fiscal_year_cached(tally.slot_start), st.params.issuance_factor_kind)
        factor_ref = f"{row.key}/{row.fiscal_year}/{row.kind}"
    lot = issue_lot(st, ctx.events, lot_id=f"{base}+{n}", device=dev, owner=dev.owner,
                    interval_start=tally.slot_start, interval_end=tally.slot_start + SLOT_SECONDS,
                    self_consumed_wh=wh, quantity_g=quantity, factor_g_per_kwh=tally.factor_g_per_kwh,
                    factor_ref=factor_ref, height=ctx.height, block_time=ctx.time, reading_hash=b"",
                    origin="reconcile", reference=f"{base}: {reference}")
    count_lot(st, lot)
    st.mark(f"d/{dev.device_id}")
    repay_debt(ctx, dev, lot)
    return lot


def _drift(ctx: Any, dev: Device, tally: SlotTally, tol_export: int, tol_import: int) -> None:
    params: Params = ctx.state.params
    quantity, dgc, sm = "", 0, 0
    if abs(tally.export_wh - tally.sm_export_wh) > tol_export:
        quantity, dgc, sm = "export", tally.export_wh, tally.sm_export_wh
    elif abs(tally.import_wh - tally.sm_import_wh) > tol_import:
        quantity, dgc, sm = "import", tally.import_wh, tally.sm_import_wh
    if not quantity:
        dev.drift_slots = 0
    else:
        way = 1 if dgc > sm else -1
        dev.drift_slots = dev.drift_slots + way if dev.drift_slots * way > 0 else way
        if abs(dev.drift_slots) == params.drift_alert_slots:
            dev.drift_alerts += 1
            ctx.emit(CalibrationDrift(dev.device_id, slot_id(tally.slot_start), quantity, dgc, sm,
                                      abs(dev.drift_slots)))
    ctx.state.mark(f"d/{dev.device_id}")


def ready(tally: SlotTally) -> bool:
    """Whether a slot can be reconciled now: complete, with smart-meter values, not yet done."""
    return tally.status == PROVISIONAL and tally.covered_s == SLOT_SECONDS and tally.has_meter


def reconcile(ctx: Any, dev: Device, tally: SlotTally) -> None:
    """Compare a ready slot with the smart meter and correct what stands (see the module doc)."""
    st: State = ctx.state
    params = st.params
    sid = slot_id(tally.slot_start)
    st.mark(f"v/{dev.device_id}/{sid}")
    tol_e = tolerance_wh(tally.sm_export_wh, tally.sm_resolution_wh, params)
    tol_i = tolerance_wh(tally.sm_import_wh, tally.sm_resolution_wh, params)
    stands = tally.issued_g - tally.withdrawn_g
    late = ctx.time >= tally.slot_start + SLOT_SECONDS + params.final_after_s
    agree = abs(tally.export_wh - tally.sm_export_wh) <= tol_e
    factor = tally.factor_g_per_kwh
    if not factor and not late and not agree:  # no lot yet in the slot: the factor readings would use
        try:
            factor = st.factors.lookup(dev.grid_area, fiscal_year_cached(tally.slot_start),
                                       params.issuance_factor_kind).g_per_kwh
        except NotFoundError:  # no factor for the year: nothing can be issued, so nothing to top up
            factor = 0
    target = co2_g_floor(max(0, tally.generation_wh - tally.sm_export_wh), factor)
    topup = cancelled = debt = 0
    if late:
        status = LATE
    elif agree or target == stands:
        status = FINAL
    else:
        status = CORRECTED
        reference = (f"smart meter slot {lot_label(tally.slot_start)}: export {tally.sm_export_wh} Wh, "
                     f"DGC {tally.export_wh} Wh [{tally.sm_hash.hex()[:16]}]")
        if target < stands:
            cancelled, debt = withdraw(ctx, dev, tally, stands - target, reference)
        else:
            if not tally.factor_g_per_kwh:
                tally.factor_g_per_kwh = factor
            wh = max(0, tally.generation_wh - tally.sm_export_wh) - (tally.generation_wh - tally.export_wh)
            topup = target - stands
            _topup(ctx, dev, tally, topup, max(0, wh), reference)
    tally.status = status
    tally.target_g = target
    tally.reconciled_height = ctx.height
    ctx.emit(SlotReconciled(dev.device_id, sid, status, tally.generation_wh, tally.import_wh, tally.export_wh,
                            tally.sm_import_wh, tally.sm_export_wh, tol_e, stands, target, topup, cancelled, debt))
    _drift(ctx, dev, tally, tol_e, tol_i)
