"""Conserved quantities, checked. Run by tests, by the node at start-up and by ``crev verify``.

* Every lot's segments tile its unit range [first_unit, first_unit + quantity_g) exactly.
* Per lot and chain-wide: tradable + escrowed + retired + cancelled = issued.
* Units are numbered without gaps: next_unit − 1 = issued.
* Each account's tradable / escrowed / retired balance equals the sum of its segments; none is
  negative.
* Each retirement's quantity equals the retired units that reference it.
* Money: every account's available + reserved JPY adds up to the JPY on the ledger (deposits −
  withdrawals); none is negative.
* Each account's reserved JPY is what its open bids hold; each open bid holds at least what its
  remaining quantity costs at its limit with the fee.
* Escrowed units belong to open offers (segment reference = order id) and each open offer's
  escrowed units equal its remaining quantity.
* Slot tallies: a device's tallies issued what its lots did (Σ issued_g = the device's issued_g),
  and the debt its reconciliations recorded is what it still owes plus what it repaid.
* Delegates: each acts for an existing account, and no delegate id is an account id.
* Readings: each reading record is of a registered device and has a seq no greater than the
  device's last accepted seq (which lets a new reading skip the look-up for a prior one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from crev.errors import InvalidBlock
from crev.ledger.records import ASK, BID, CANCELLED, ESCROWED, OPEN, RETIRED, STATUSES, TRADABLE, Lot, Order
from crev.ledger.state import State


def check_lot_tiles(lot: Lot) -> None:
    """A lot's segments tile its unit range [first_unit, first_unit + quantity_g) in order, each
    with a known status; raise InvalidBlock naming the lot otherwise."""
    pos = lot.first_unit
    for s in lot.segments:
        if s.start != pos or s.end <= s.start:
            raise InvalidBlock(f"lot {lot.lot_id}", f"segments do not tile the unit range at {pos}")
        if s.status not in STATUSES:
            raise InvalidBlock(f"lot {lot.lot_id}", f"unknown status {s.status!r}")
        pos = s.end
    if pos != lot.first_unit + lot.quantity_g:
        raise InvalidBlock(f"lot {lot.lot_id}", "segments do not cover the issued quantity")


def check_invariants(state: State) -> None:
    """Raise InvalidBlock naming the first broken invariant."""
    totals = dict.fromkeys(STATUSES, 0)
    per_acct: dict[tuple[str, str], int] = defaultdict(int)
    per_ret: dict[str, int] = defaultdict(int)
    per_escrow: dict[str, int] = defaultdict(int)
    issued = 0
    for lot in state.lots.values():
        check_lot_tiles(lot)
        for s in lot.segments:
            totals[s.status] += s.end - s.start
            per_acct[(s.holder, s.status)] += s.end - s.start
            if s.status == RETIRED:
                per_ret[s.ref] += s.end - s.start
            elif s.status == ESCROWED:
                per_escrow[s.ref] += s.end - s.start
        issued += lot.quantity_g
    sup = state.supply
    if issued != sup.issued_g:
        raise InvalidBlock("supply.issued_g", f"is {sup.issued_g}, lots add up to {issued}")
    if sup.next_unit - 1 != issued:
        raise InvalidBlock("supply.next_unit", "unit ids are not contiguous with what was issued")
    for status, attr in ((TRADABLE, "tradable_g"), (ESCROWED, "escrowed_g"), (RETIRED, "retired_g"),
                         (CANCELLED, "cancelled_g")):
        if getattr(sup, attr) != totals[status]:
            raise InvalidBlock(f"supply.{attr}", f"is {getattr(sup, attr)}, lots add up to {totals[status]}")
    if sup.tradable_g + sup.escrowed_g + sup.retired_g + sup.cancelled_g != sup.issued_g:
        raise InvalidBlock("supply", "tradable + escrowed + retired + cancelled ≠ issued")
    for acct in state.accounts.values():
        for status, attr in ((TRADABLE, "tradable_g"), (ESCROWED, "escrowed_g"), (RETIRED, "retired_g")):
            have = getattr(acct, attr)
            if have < 0:
                raise InvalidBlock(f"account {acct.account_id}.{attr}", f"is negative ({have})")
            if have != per_acct.get((acct.account_id, status), 0):
                raise InvalidBlock(f"account {acct.account_id}.{attr}",
                                   f"is {have}, segments add up to {per_acct.get((acct.account_id, status), 0)}")
    for rid, ret in state.retirements.items():
        if per_ret.get(rid, 0) != ret.quantity_g:
            raise InvalidBlock(f"retirement {rid}", "quantity differs from the units it retired")
    if sum(per_ret.values()) != sup.retired_g:
        raise InvalidBlock("supply.retired_g", "retired units without a retirement record")
    check_money(state, per_escrow)
    check_tallies(state)
    check_readings(state)


def check_readings(state: State) -> None:
    devices = state.devices
    for device_id, seq in state.readings:
        dev = devices.get(device_id)
        if dev is None:
            raise InvalidBlock(f"reading {device_id}/{seq}", f"no device {device_id!r}")
        if seq > dev.last_seq:
            raise InvalidBlock(f"reading {device_id}/{seq}", f"is above the device's last_seq {dev.last_seq}")


def check_tallies(state: State) -> None:
    issued: dict[str, int] = defaultdict(int)
    debt: dict[str, int] = defaultdict(int)
    for (device_id, _slot), t in state.tallies.items():
        issued[device_id] += t.issued_g
        debt[device_id] += t.debt_g
        if t.withdrawn_g > t.issued_g or t.debt_g > t.withdrawn_g:
            raise InvalidBlock(f"tally {device_id}/{_slot}", "withdraws more than it issued")
    for dev in state.devices.values():
        if issued.get(dev.device_id, 0) != dev.issued_g:
            raise InvalidBlock(f"device {dev.device_id}.issued_g",
                               f"is {dev.issued_g}, its slot tallies add up to {issued.get(dev.device_id, 0)}")
        if dev.debt_g < 0 or debt.get(dev.device_id, 0) != dev.debt_g + dev.debt_repaid_g:
            raise InvalidBlock(f"device {dev.device_id}.debt_g",
                               f"owes {dev.debt_g} g and repaid {dev.debt_repaid_g} g, its reconciliations "
                               f"recorded {debt.get(dev.device_id, 0)} g")


def check_money(state: State, per_escrow: dict[str, int], orders: Iterable[Order] | None = None) -> None:
    """JPY and escrow: each open bid holds what its remainder needs and its account reserves what
    its bids hold, each open offer's lots add up to what remains and the units escrowed for it
    (``per_escrow``: order id → units) equal that, accounts hold the ledger's JPY, no delegate is an
    account. ``orders``: the orders to check, every order by default (a node that holds only the open
    ones passes those; that closed bids reserve nothing is then left to ``crev verify``)."""
    from crev.ledger.trading import bid_escrow

    held = 0
    reserved: dict[str, int] = defaultdict(int)
    for o in state.orders.values() if orders is None else orders:
        if o.status != OPEN:
            if o.side == BID and o.escrow_jpy:
                raise InvalidBlock(f"order {o.order_id}", "a closed bid still reserves JPY")
            continue
        if o.side == BID:
            need = bid_escrow(o.remaining_g, o.price, state.markets[o.market_id].fee_bp)
            if o.escrow_jpy < need:
                raise InvalidBlock(f"order {o.order_id}.escrow_jpy",
                                   f"is {o.escrow_jpy}, the remaining {o.remaining_g} g need {need}")
            reserved[o.account] += o.escrow_jpy
        elif o.side == ASK:
            if sum(left for _, left in o.lots) != o.remaining_g:
                raise InvalidBlock(f"order {o.order_id}.lots", "do not add up to remaining_g")
            if per_escrow.pop(o.order_id, 0) != o.remaining_g:
                raise InvalidBlock(f"order {o.order_id}", "escrowed units differ from remaining_g")
    if per_escrow:
        raise InvalidBlock("escrow", f"units escrowed for orders that are not open: {sorted(per_escrow)[:3]}")
    for acct in state.accounts.values():
        if acct.jpy < 0 or acct.jpy_escrowed < 0:
            raise InvalidBlock(f"account {acct.account_id}.jpy", "is negative")
        if acct.jpy_escrowed != reserved.get(acct.account_id, 0):
            raise InvalidBlock(f"account {acct.account_id}.jpy_escrowed",
                               f"is {acct.jpy_escrowed}, its open bids hold {reserved.get(acct.account_id, 0)}")
        held += acct.jpy + acct.jpy_escrowed
    if held != state.supply.jpy:
        raise InvalidBlock("supply.jpy", f"is {state.supply.jpy}, accounts hold {held}")
    for dlg in state.delegates.values():
        if dlg.delegate_id in state.accounts:
            raise InvalidBlock(f"delegate {dlg.delegate_id}", "is also an account id")
        if dlg.owner not in state.accounts:
            raise InvalidBlock(f"delegate {dlg.delegate_id}.owner", f"{dlg.owner!r} is no account")
