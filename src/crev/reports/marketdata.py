"""Market data read from the state: every market with its best prices, and a book by price level.
Shared by the CLI (``crev market``) and the API. Both read the open orders through the state's
open-order index (``State.open_orders``), never every order the ledger ever held."""

from __future__ import annotations

from typing import Any

from crev.errors import NotFoundError
from crev.ledger.records import Order
from crev.ledger.state import State


def _open_in(state: State, market_id: str) -> list[Order]:
    return [state.orders[oid] for oid in state.open_orders().in_market(market_id)]


def market_rows(state: State) -> list[dict[str, Any]]:
    out = []
    for m in sorted(state.markets.values(), key=lambda m: m.market_id):
        open_orders = _open_in(state, m.market_id)
        bids = [o.price for o in open_orders if o.side == "bid"]
        asks = [o.price for o in open_orders if o.side == "ask"]
        out.append({"market_id": m.market_id, "name": m.name, "mode": m.mode, "open": m.open,
                    "price_min": m.price_min, "price_max": m.price_max, "min_qty_g": m.min_qty_g,
                    "fee_bp": m.fee_bp, "best_bid": max(bids, default=0), "best_ask": min(asks, default=0),
                    "last_price": m.last_price, "next_clear": m.next_clear})
    return out


def book_levels(state: State, market_id: str) -> dict[str, list[list[int]]]:
    """The open orders of a market by price level: {"bids": [[price, g, orders], ...] best first, "asks": ...}."""
    if market_id not in state.markets:
        raise NotFoundError("market", f"no market {market_id!r}")
    levels: dict[str, dict[int, list[int]]] = {"bid": {}, "ask": {}}
    for o in _open_in(state, market_id):
        lv = levels[o.side].setdefault(o.price, [0, 0])
        lv[0] += o.remaining_g
        lv[1] += 1
    return {"bids": [[p, *levels["bid"][p]] for p in sorted(levels["bid"], reverse=True)],
            "asks": [[p, *levels["ask"][p]] for p in sorted(levels["ask"])]}
