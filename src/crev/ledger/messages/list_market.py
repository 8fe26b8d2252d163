"""list_market: the operator lists a market (a product with its matching mode and rules) or
changes one.

body = [market_id, name, mode, product, price_min, price_max, min_qty_g, fee_bp, call_interval_s,
        open]

* ``mode``: ``continuous`` (continuous double auction, price-time priority) or ``call`` (orders
  collect blind and clear at one price at every multiple of ``call_interval_s`` seconds).
* ``product``: a filter (see messages/common.py ``parse_filter``) every lot traded here matches.
* Prices are JPY per t-CO2e within [price_min, price_max]; an order's quantity is at least
  ``min_qty_g``; ``fee_bp`` (basis points of the trade value) is charged to each side and goes to
  the operator.

Listing an existing id changes its name, bounds, minimum, fee or open flag; the mode, product and
call interval of a market are fixed. Closing a market closes its open orders (releasing what they
reserved); orders for a closed market are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import ConflictError, MalformedError
from crev.ledger.events import MarketListed
from crev.ledger.messages.common import MAX_PRICE, parse_filter, require_operator
from crev.ledger.params import Params
from crev.ledger.records import CALL, MODES, Filter, Market
from crev.ledger.shape import MAX_U63, need_bool, need_choice, need_id, need_int, need_list, need_text
from crev.ledger.trading import close_order, next_multiple
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class ListMarket:
    kind: ClassVar[str] = "list_market"
    market_id: str
    name: str
    mode: str
    product: Filter
    price_min: int
    price_max: int
    min_qty_g: int
    fee_bp: int
    call_interval_s: int
    open: bool

    def to_body(self) -> list[Any]:
        return [self.market_id, self.name, self.mode, self.product.to_value(), self.price_min,
                self.price_max, self.min_qty_g, self.fee_bp, self.call_interval_s, self.open]

    def handle(self, ctx: Any) -> Any:
        require_operator(ctx)
        st = ctx.state
        m = st.markets.get(self.market_id)
        if m is None:
            m = Market(self.market_id, self.name, self.mode, self.product, self.price_min,
                       self.price_max, self.min_qty_g, self.fee_bp, self.call_interval_s, self.open,
                       next_multiple(ctx.time, self.call_interval_s) if self.mode == CALL else 0)
            st.markets[m.market_id] = m
        else:
            for name in ("mode", "product", "call_interval_s"):
                if getattr(m, name) != getattr(self, name):
                    raise ConflictError(f"body.{name}", f"cannot change a listed market's {name}; "
                                                        "list a new market instead")
            if m.open and not self.open:
                for oid in st.open_orders().in_market(m.market_id):  # in sequence order
                    close_order(ctx, st.orders[oid], "market_closed")
            (m.name, m.price_min, m.price_max, m.min_qty_g, m.fee_bp, m.open) = (
                self.name, self.price_min, self.price_max, self.min_qty_g, self.fee_bp, self.open)
        st.mark(f"m/{m.market_id}")
        ctx.emit(MarketListed(m.market_id, m.mode, m.open, m.price_min, m.price_max, m.min_qty_g,
                              m.fee_bp))
        return [m.market_id]


@register(ListMarket.kind)
def from_body(body: Any, params: Params) -> ListMarket:
    b = need_list(body, "body", 10)
    msg = ListMarket(need_id(b[0], "body.market_id"), need_text(b[1], "body.name", params.max_text_len),
                     need_choice(b[2], "body.mode", MODES), parse_filter(b[3], "body.product"),
                     need_int(b[4], "body.price_min", 1, MAX_PRICE),
                     need_int(b[5], "body.price_max", 1, MAX_PRICE),
                     need_int(b[6], "body.min_qty_g", 1, MAX_U63), need_int(b[7], "body.fee_bp", 0, 1000),
                     need_int(b[8], "body.call_interval_s", 0, 366 * 86400), need_bool(b[9], "body.open"))
    if msg.product.final_only:
        raise MalformedError("body.product.final_only", "is for bids and offers, not a market's product")
    if msg.price_max < msg.price_min:
        raise MalformedError("body.price_max", "must be ≥ price_min")
    if msg.mode == CALL and msg.call_interval_s < 60:
        raise MalformedError("body.call_interval_s", "a call market clears at least 60 s apart")
    if msg.mode != CALL and msg.call_interval_s:
        raise MalformedError("body.call_interval_s", "must be 0 for a continuous market")
    return msg
