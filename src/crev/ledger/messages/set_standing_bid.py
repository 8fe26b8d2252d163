"""set_standing_bid: a buyer's standing demand. Up to ``monthly_g`` per JST month at no more than
``price`` JPY/t-CO2e, for C-REV that matches ``filter``, retired at once for ``retire`` if given.

body = [market_id, price, monthly_g, filter, retire]; monthly_g 0 removes it.

The ledger keeps one bid order open for it: placed now, and at each new month (by market_tick)
replaced by a fresh one for the month's full quantity. A bid the buyer's JPY cannot fully cover
is cut to what it can (and skipped below the market minimum) rather than refused, so a standing
demand never fails for lack of money; it simply buys less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import NotFoundError, RuleError
from crev.ledger.events import StandingBidSet
from crev.ledger.messages.common import check_price, need_price, open_market, parse_filter, parse_retire
from crev.ledger.messages.place_order import never_matches
from crev.ledger.params import Params
from crev.ledger.records import CALL, OPEN, Filter, RetireSpec, StandingBid
from crev.ledger.shape import MAX_U63, need_id, need_int, need_list
from crev.ledger.trading import close_order, month_of, renew_standing_bid
from crev.ledger.tx import register


@dataclass(frozen=True, slots=True)
class SetStandingBid:
    kind: ClassVar[str] = "set_standing_bid"
    market_id: str
    price: int
    monthly_g: int
    filter: Filter
    retire: RetireSpec | None

    def to_body(self) -> list[Any]:
        return [self.market_id, self.price, self.monthly_g, self.filter.to_value(),
                [] if self.retire is None else self.retire.to_value()]

    def handle(self, ctx: Any) -> Any:
        st = ctx.state
        account = ctx.signer.account_id
        key = (account, self.market_id)
        old = st.standing_bids.get(key)
        if self.monthly_g == 0:
            if old is None:
                raise NotFoundError("body.market_id", f"{account} has no standing bid in {self.market_id}")
            order = st.orders.get(old.order_id)
            if order is not None and order.status == OPEN:
                close_order(ctx, order, "cancelled")
            del st.standing_bids[key]
            st.mark(f"b/{account}/{self.market_id}")
            ctx.emit(StandingBidSet(account, self.market_id, self.price, 0))
            return [account, ""]
        m = open_market(ctx, self.market_id)
        check_price(m, self.price)
        if self.monthly_g < m.min_qty_g:
            raise RuleError("body.monthly_g", f"{self.monthly_g} g is below the market's minimum of "
                                              f"{m.min_qty_g} g")
        if m.mode == CALL and not self.filter.empty:
            raise RuleError("body.filter", "a call market clears one product at one price: bids there "
                                           "take no filter of their own")
        why = never_matches(st, m, self.filter)
        if why:
            raise RuleError("body.filter", f"can never match: {why}")
        sb = StandingBid(account, self.market_id, self.price, self.monthly_g, self.filter, self.retire,
                         0, old.order_id if old else "")
        st.standing_bids[key] = sb
        renew_standing_bid(ctx, sb, month_of(ctx.time))
        ctx.emit(StandingBidSet(account, self.market_id, self.price, self.monthly_g))
        return [account, sb.order_id]


@register(SetStandingBid.kind)
def from_body(body: Any, params: Params) -> SetStandingBid:
    b = need_list(body, "body", 5)
    return SetStandingBid(need_id(b[0], "body.market_id"), need_price(b[1], "body.price"),
                          need_int(b[2], "body.monthly_g", 0, MAX_U63), parse_filter(b[3], "body.filter"),
                          parse_retire(b[4], "body.retire", params))
