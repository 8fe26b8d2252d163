"""Conserved quantities, checked. Run by tests, by the node at start-up and by ``crev verify``.

* Every lot's segments tile its unit range [first_unit, first_unit + quantity_g) exactly.
* Per lot and chain-wide: tradable + escrowed + retired + cancelled = issued.
* Units are numbered without gaps: next_unit − 1 = issued.
* Each account's tradable / escrowed / retired balance equals the sum of its segments; none is
  negative.
* Each retirement's quantity equals the retired units that reference it.
"""

from __future__ import annotations

from collections import defaultdict

from crev.errors import InvalidBlock
from crev.ledger.records import CANCELLED, ESCROWED, RETIRED, STATUSES, TRADABLE
from crev.ledger.state import State


def check_invariants(state: State) -> None:
    """Raise InvalidBlock naming the first broken invariant."""
    totals = dict.fromkeys(STATUSES, 0)
    per_acct: dict[tuple[str, str], int] = defaultdict(int)
    per_ret: dict[str, int] = defaultdict(int)
    issued = 0
    for lot in state.lots.values():
        pos = lot.first_unit
        for s in lot.segments:
            if s.start != pos or s.end <= s.start:
                raise InvalidBlock(f"lot {lot.lot_id}", f"segments do not tile the unit range at {pos}")
            if s.status not in STATUSES:
                raise InvalidBlock(f"lot {lot.lot_id}", f"unknown status {s.status!r}")
            totals[s.status] += s.end - s.start
            per_acct[(s.holder, s.status)] += s.end - s.start
            if s.status == RETIRED:
                per_ret[s.ref] += s.end - s.start
            pos = s.end
        if pos != lot.first_unit + lot.quantity_g:
            raise InvalidBlock(f"lot {lot.lot_id}", "segments do not cover the issued quantity")
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
