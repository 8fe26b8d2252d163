"""Rebuilding the state from stored (key, canonical value) pairs, as a restarted node does."""

from __future__ import annotations

from collections.abc import Iterable

from crev.core.encoding import decode
from crev.core.factors import FactorRow
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.records import (
    Account,
    Device,
    Lot,
    Market,
    OfferPolicy,
    Order,
    ReadingRecord,
    Retirement,
    StandingBid,
    Supply,
)
from crev.ledger.state import State


def load_state(genesis: Genesis, items: Iterable[tuple[str, bytes]], height: int, last_hash: bytes,
               last_time: int) -> State:
    """State from a snapshot. The caller compares ``state.tree.root()`` with the last header."""
    st = state_from_genesis(genesis)
    st.accounts.clear()
    st.factor_rows.clear()
    rows: list[FactorRow] = []
    tree = st.tree
    for key, value in items:
        kind, _, rest = key.partition("/")
        if kind != "g":
            v = decode(value, key)
            if kind == "a":
                st.accounts[rest] = Account.from_value(v)
            elif kind == "d":
                device = st.devices[rest] = Device.from_value(v)
                st.meter_serials[device.meter_serial] = rest
            elif kind == "l":
                st.lots[rest] = Lot.from_value(v)
            elif kind == "r":
                dev, _, seq = rest.rpartition("/")
                st.readings[(dev, int(seq))] = ReadingRecord.from_value(v)
            elif kind == "t":
                st.retirements[rest] = Retirement.from_value(v)
            elif kind == "f":
                row = FactorRow.from_list(v, key)
                st.factor_rows[rest] = row
                rows.append(row)
            elif kind == "m":
                st.markets[rest] = Market.from_value(v)
            elif kind == "o":
                st.orders[rest] = Order.from_value(v)
            elif kind == "p":
                st.offer_policies[rest] = OfferPolicy.from_value(v)
            elif kind == "b":
                acct, _, market = rest.partition("/")
                st.standing_bids[(acct, market)] = StandingBid.from_value(v)
            elif kind == "s":
                st.supply = Supply.from_value(v)
            else:
                raise ValueError(f"unknown state key {key!r}")
        tree.set(key, value)
    st.factors.upsert(rows)
    st.discard_changes()
    st.height = height
    st.last_block_hash = last_hash
    st.last_time = last_time
    return st
