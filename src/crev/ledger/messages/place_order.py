"""place_order: a bid to buy or an offer (ask) to sell C-REV in a market.

body = [market_id, side, price, quantity_g, tif, expires_at, filter, lots, retire]

* ``side``: ``bid`` or ``ask``. ``price``: JPY per t-CO2e (the limit), within the market's bounds.
  ``quantity_g``: at least the market's minimum.
* ``tif`` (time in force): ``gtc`` good till cancelled, ``gtt`` good till ``expires_at`` (unix s,
  after the block time; 0 for the others), ``ioc`` immediate or cancel (what does not fill at
  once is dropped), ``fok`` fill or kill (fills completely at once or nothing happens; the order
  is still recorded, closed as ``fok``). A call market takes only gtc and gtt.
* A bid's ``filter`` says which C-REV it accepts (grid areas, technologies, FIT, devices, vintage
  window), on top of the market's product; ``retire`` ([] or the retirement fields of
  messages/retire.py) retires what it buys at once, for that beneficiary and period.
* An offer sells the listed ``lots`` ([[lot_id, quantity_g], ...], adding up to quantity_g) or,
  if ``lots`` is empty, the oldest of the seller's tradable C-REV that matches ``filter`` and the
  market's product. Offers take no ``retire``.

Placing escrows what the order needs (ledger/trading.py): the C-REV of an offer, or the JPY of a
bid at its limit price including the fee. Nothing can be placed that the account cannot cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from crev.errors import MalformedError, PermissionError_, RuleError
from crev.ledger.holdings import available
from crev.ledger.messages.common import (
    check_holdings,
    check_price,
    need_price,
    open_market,
    parse_filter,
    parse_items,
    parse_retire,
)
from crev.ledger.params import Params
from crev.ledger.reconcile import lot_is_final
from crev.ledger.records import (
    ASK,
    BID,
    CALL,
    OPEN,
    TIFS,
    TRADABLE,
    Filter,
    Lot,
    Market,
    Order,
    RetireSpec,
)
from crev.ledger.shape import MAX_U63, need_choice, need_id, need_int, need_list, need_time
from crev.ledger.state import State
from crev.ledger.trading import book_for, finality_check, new_bid, new_order_id, place_order
from crev.ledger.tx import register


def never_matches(st: State, market: Market, f: Filter) -> str:
    """Why no lot can pass both the market's product and the filter ``f`` ("" if some can)."""
    p = market.product
    if p.grid_areas and f.grid_areas and not set(p.grid_areas) & set(f.grid_areas):
        return f"no grid area is both in the filter and in market {market.market_id}'s product"
    if p.technologies and f.technologies and not set(p.technologies) & set(f.technologies):
        return "no technology is both in the filter and in the market's product"
    if p.fit >= 0 and f.fit >= 0 and p.fit != f.fit:
        return "the filter's FIT flag contradicts the market's product"
    lo = max(p.vintage_start, f.vintage_start)
    ends = [e for e in (p.vintage_end, f.vintage_end) if e]
    if ends and min(ends) <= lo:
        return "the filter's vintage window does not overlap the market's"
    for d in f.devices:
        dev = st.devices.get(d)
        if dev is None:
            return f"device {d!r} is not registered"
    if f.devices:
        areas = set(f.grid_areas) & set(p.grid_areas) if f.grid_areas and p.grid_areas else \
            set(f.grid_areas or p.grid_areas)
        ok = [d for d in f.devices
              if (not areas or st.devices[d].grid_area in areas)
              and (f.fit < 0 or st.devices[d].fit == bool(f.fit))
              and (p.fit < 0 or st.devices[d].fit == bool(p.fit))]
        if not ok:
            return "none of the filter's devices is in its grid areas or FIT class"
    return ""


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    kind: ClassVar[str] = "place_order"
    market_id: str
    side: str
    price: int
    quantity_g: int
    tif: str
    expires_at: int
    filter: Filter
    lots: tuple[tuple[str, int], ...]
    retire: RetireSpec | None

    def to_body(self) -> list[Any]:
        return [self.market_id, self.side, self.price, self.quantity_g, self.tif, self.expires_at,
                self.filter.to_value(), [list(i) for i in self.lots],
                [] if self.retire is None else self.retire.to_value()]

    def handle(self, ctx: Any) -> Any:
        st: State = ctx.state
        account = ctx.signer.account_id
        if self.side == BID and ctx.delegate is not None:
            raise PermissionError_("body.side", f"{ctx.delegate.delegate_id} is a delegate of {account}: a "
                                                "delegate places offers (asks) only, never a bid that spends "
                                                "its owner's JPY")
        market = open_market(ctx, self.market_id)
        check_price(market, self.price)
        if self.quantity_g < market.min_qty_g:
            raise RuleError("body.quantity_g", f"{self.quantity_g} g is below the market's minimum "
                                               f"of {market.min_qty_g} g")
        if market.mode == CALL and self.tif not in ("gtc", "gtt"):
            raise RuleError("body.tif", f"market {market.market_id} is a call auction: only gtc and "
                                        "gtt orders wait for the clearing")
        if self.tif == "gtt" and self.expires_at <= ctx.time:
            raise RuleError("body.expires_at", f"{self.expires_at} is not after the block time {ctx.time}")
        if market.mode == CALL and not self.filter.empty and self.side == BID:
            raise RuleError("body.filter", "a call market clears one product at one price: bids "
                                           "there take no filter of their own")
        if market.mode == CALL:
            opposite = ASK if self.side == BID else BID
            mine = st.open_orders().first_of(market.market_id, account, opposite)
            if mine is not None:
                raise RuleError("body.side", f"{account} has an open {opposite} ({mine}) in this "
                                             "call market: an auction cannot trade an account with itself")
        book = book_for(st, market)
        if self.side == BID:
            why = never_matches(st, market, self.filter)
            if why:
                raise RuleError("body.filter", f"can never match: {why}")
            if self.tif == "fok":
                can = book.fillable_bid(account, self.price, self.quantity_g, self.filter, finality_check(ctx))
                if can < self.quantity_g:
                    raise RuleError("body.quantity_g", f"fill or kill: only {can} g can fill at once at "
                                                       f"≤ {self.price} JPY/t; nothing was placed")
            order = new_bid(ctx, market, account, self.price, self.quantity_g, self.tif,
                            self.expires_at, self.filter, self.retire, "order")
            assert order is not None
            trades = place_order(ctx, order, [])
        else:
            sell = self._select(ctx, market, account)
            if self.tif == "fok":
                can = book.fillable_ask(account, self.price, [(lot.lot_id, lot, q) for lot, q in sell],
                                        finality_check(ctx))
                if can < self.quantity_g:
                    raise RuleError("body.quantity_g", f"fill or kill: only {can} g can fill at once at "
                                                       f"≥ {self.price} JPY/t; nothing was placed")
            order = Order(new_order_id(st), st.supply.orders, market.market_id, account, ASK, self.price,
                          self.quantity_g, self.quantity_g, self.tif, self.expires_at, self.filter, None,
                          [[lot.lot_id, q] for lot, q in sell], 0, OPEN, ctx.height, "order")
            trades = place_order(ctx, order, sell)
        return [order.order_id, order.status, order.quantity_g - order.remaining_g, len(trades)]

    def _select(self, ctx: Any, market: Market, account: str) -> list[tuple[Lot, int]]:
        """The lots and grams an offer sells, checked."""
        if self.lots:
            if sum(q for _, q in self.lots) != self.quantity_g:
                raise MalformedError("body.lots", f"the lots add up to {sum(q for _, q in self.lots)} g, "
                                                  f"not quantity_g {self.quantity_g}")
            lots = check_holdings(ctx, account, self.lots, "body.lots")
            for i, lot in enumerate(lots):
                if not market.product.matches(lot):
                    raise RuleError(f"body.lots[{i}].lot_id", f"{lot.lot_id} is not in market "
                                                              f"{market.market_id}'s product")
            return list(zip(lots, (q for _, q in self.lots), strict=True))
        sell = self._oldest(ctx, market, account)
        got = sum(q for _, q in sell)
        if got < self.quantity_g:
            raise RuleError("body.quantity_g", f"insufficient C-REV: {account} holds "
                                               f"{got} g tradable that match the "
                                               f"offer and the market, {self.quantity_g} g offered")
        return sell

    def _oldest(self, ctx: Any, market: Market, account: str) -> list[tuple[Lot, int]]:
        """The oldest of ``account``'s tradable C-REV matching the offer's filter and the market's
        product: lots by (interval_start, lot_id), each taken whole until ``quantity_g`` is
        reached (less if the account holds less). Reads the account's tradable lots from the
        state's index (ledger/indexes.py) from the vintage window's start, not every lot."""
        st: State = ctx.state
        product, flt = market.product, self.filter
        start = max(product.vintage_start, flt.vintage_start)
        end = min([e for e in (product.vintage_end, flt.vintage_end) if e], default=0)
        index = st.tradable_lots()
        lots = st.lots
        sell: list[tuple[Lot, int]] = []
        need = self.quantity_g
        empty: list[tuple[int, str]] = []
        try:
            for key in index.lots_of(account, start, end):
                lot = lots[key[1]]
                have = available(lot, account, TRADABLE)
                if not have:
                    empty.append(key)
                elif product.matches(lot) and flt.matches(lot) and (
                        not flt.final_only or lot_is_final(st, lot, ctx.time)):
                    take = min(have, need)
                    sell.append((lot, take))
                    need -= take
                    if not need:
                        break
            return sell
        finally:
            for key in empty:
                index.drop(account, key)


@register(PlaceOrder.kind)
def from_body(body: Any, params: Params) -> PlaceOrder:
    b = need_list(body, "body", 9)
    side = need_choice(b[1], "body.side", (BID, ASK))
    tif = need_choice(b[4], "body.tif", TIFS)
    expires_at = need_time(b[5], "body.expires_at")
    if tif == "gtt" and not expires_at:
        raise MalformedError("body.expires_at", "a gtt order needs its expiry time")
    if tif != "gtt" and expires_at:
        raise MalformedError("body.expires_at", f"must be 0 for a {tif} order")
    lots_v = need_list(b[7], "body.lots")
    lots = parse_items(lots_v, "body.lots") if lots_v else ()
    retire = parse_retire(b[8], "body.retire", params)
    if side == BID and lots:
        raise MalformedError("body.lots", "a bid names no lots: use its filter")
    if side == ASK and retire is not None:
        raise MalformedError("body.retire", "an offer does not retire; a bid can")
    return PlaceOrder(need_id(b[0], "body.market_id"), side, need_price(b[2], "body.price"),
                      need_int(b[3], "body.quantity_g", 1, MAX_U63), tif, expires_at,
                      parse_filter(b[6], "body.filter"), lots, retire)

