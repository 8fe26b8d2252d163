"""Rebuilding the state from stored (key, canonical value) pairs, as a restarted node does.

``decode_entry`` turns one stored entry into the record the state's maps hold, under the map's key;
``load_state`` uses it for a whole snapshot, and the read-only view (node/lazystate.py) for the
entries it reads one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from crev.core.encoding import decode, decode_committed
from crev.core.factors import FactorRow
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.records import (
    Account,
    ControlRecord,
    Delegate,
    Device,
    Lot,
    Market,
    OfferPolicy,
    Order,
    ReadingRecord,
    Retirement,
    SlotTally,
    StandingBid,
    Supply,
)
from crev.ledger.state import State

_RECORDS: dict[str, Any] = {"a": Account, "d": Device, "l": Lot, "r": ReadingRecord, "t": Retirement,
                            "m": Market, "o": Order, "p": OfferPolicy, "b": StandingBid, "s": Supply,
                            "v": SlotTally, "c": ControlRecord, "k": Delegate}


def map_key(kind: str, rest: str) -> Any:
    """The key of the entry ``<kind>/<rest>`` in its state map: ``(device, seq)`` for a reading
    record, ``(device, slot_id)`` for a slot tally, ``(device, seq)`` for a control record,
    ``(account, market)`` for a standing bid, ``rest`` otherwise."""
    if kind in ("r", "v", "c"):
        dev, _, seq = rest.rpartition("/")
        return dev, int(seq)
    if kind == "b":
        acct, _, market = rest.partition("/")
        return acct, market
    return rest


def state_key(kind: str, key: Any) -> str:
    """The inverse of ``map_key``: the state key of a map's key."""
    if kind in ("r", "b", "v", "c"):
        return f"{kind}/{key[0]}/{key[1]}"
    return f"{kind}/{key}"


def decode_entry(key: str, value: bytes, *, committed: bool = False) -> Any:
    """The record stored under ``key`` (``FactorRow`` for ``f/``; not for ``g``, which the state
    derives from its genesis). ``committed``: the bytes were already checked against the leaf a
    signed state root commits to, so their canonical form is not checked again
    (``encoding.decode_committed``)."""
    kind = key.partition("/")[0]
    v = decode_committed(value, key) if committed else decode(value, key)
    if kind == "f":
        return FactorRow.from_list(v, key)
    cls = _RECORDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown state key {key!r}")
    return cls.from_value(v)


def load_state(genesis: Genesis, items: Iterable[tuple[str, bytes]], height: int, last_hash: bytes,
               last_time: int) -> State:
    """State from a snapshot. The caller compares ``state.tree.root()`` with the last header."""
    st = state_from_genesis(genesis)
    st.accounts.clear()
    st.factor_rows.clear()
    rows: list[FactorRow] = []
    tree = st.tree
    maps: dict[str, dict[Any, Any]] = {"a": st.accounts, "d": st.devices, "l": st.lots, "r": st.readings,
                                       "t": st.retirements, "m": st.markets, "o": st.orders,
                                       "p": st.offer_policies, "b": st.standing_bids, "v": st.tallies,
                                       "c": st.controls, "k": st.delegates}
    for key, value in items:
        kind, _, rest = key.partition("/")
        if kind != "g":
            rec = decode_entry(key, value)
            if kind == "s":
                st.supply = rec
            elif kind == "f":
                st.factor_rows[rest] = rec
                rows.append(rec)
            else:
                maps[kind][map_key(kind, rest)] = rec
                if kind == "d":
                    st.meter_serials[rec.meter_serial] = rest
        tree.set(key, value)
    st.factors.upsert(rows)
    st.discard_changes()
    st.height = height
    st.last_block_hash = last_hash
    st.last_time = last_time
    return st
