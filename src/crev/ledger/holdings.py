"""Unit-range bookkeeping inside a lot. Moving units splits segments (lowest unit ids first) and
merges neighbours that end up with the same holder, status and reference; the supply and each
account's balance move by the same amounts, so the supply invariant holds by construction and
is still checked (ledger/invariants.py)."""

from __future__ import annotations

from crev.ledger.records import CANCELLED, ESCROWED, RETIRED, TRADABLE, Account, Lot, Segment, Supply


def merge(segments: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for s in segments:
        if out and out[-1].end == s.start and (out[-1].holder, out[-1].status, out[-1].ref) == (
            s.holder, s.status, s.ref
        ):
            out[-1].end = s.end
        else:
            out.append(Segment(s.start, s.end, s.holder, s.status, s.ref))
    return out


def move_units(lot: Lot, holder: str | None, from_status: str, quantity: int, new_holder: str | None,
               new_status: str, ref: str = "", from_ref: str | None = None) -> list[tuple[str, int, int]]:
    """Move ``quantity`` units of ``lot`` held by ``holder`` (None: any holder) in ``from_status``
    (and, if given, reference ``from_ref``: the order that escrowed them) to ``new_holder`` (None:
    the same holder) in ``new_status``. The caller has checked that enough units are there.
    Returns (previous holder, start, end) for each range moved."""
    moved: list[tuple[str, int, int]] = []
    out: list[Segment] = []
    remaining = quantity
    for s in lot.segments:
        if (remaining > 0 and s.status == from_status and (holder is None or s.holder == holder)
                and (from_ref is None or s.ref == from_ref)):
            take = min(remaining, s.end - s.start)
            out.append(Segment(s.start, s.start + take, new_holder or s.holder, new_status, ref))
            if take < s.end - s.start:
                out.append(Segment(s.start + take, s.end, s.holder, s.status, s.ref))
            if moved and moved[-1][0] == s.holder and moved[-1][2] == s.start:
                moved[-1] = (s.holder, moved[-1][1], s.start + take)
            else:
                moved.append((s.holder, s.start, s.start + take))
            remaining -= take
        else:
            out.append(s)
    if remaining:
        raise AssertionError("move_units called without enough units")  # callers check first
    lot.segments = merge(out)
    return moved


def available(lot: Lot, holder: str | None, status: str) -> int:
    return sum(s.end - s.start for s in lot.segments
               if s.status == status and (holder is None or s.holder == holder))


_FIELD = {TRADABLE: "tradable_g", ESCROWED: "escrowed_g", RETIRED: "retired_g"}
_SUPPLY = {TRADABLE: "tradable_g", ESCROWED: "escrowed_g", RETIRED: "retired_g", CANCELLED: "cancelled_g"}


def shift_balance(acct: Account, from_status: str, to_status: str, amount: int) -> None:
    """Move ``amount`` between an account's status buckets (cancelled units leave the account)."""
    if from_status in _FIELD:
        setattr(acct, _FIELD[from_status], getattr(acct, _FIELD[from_status]) - amount)
    if to_status in _FIELD:
        setattr(acct, _FIELD[to_status], getattr(acct, _FIELD[to_status]) + amount)


def shift_supply(supply: Supply, from_status: str, to_status: str, amount: int) -> None:
    setattr(supply, _SUPPLY[from_status], getattr(supply, _SUPPLY[from_status]) - amount)
    setattr(supply, _SUPPLY[to_status], getattr(supply, _SUPPLY[to_status]) + amount)
