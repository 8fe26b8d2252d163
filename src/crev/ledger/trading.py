"""The market inside the state machine: escrow, matching, delivery-versus-payment settlement,
expiry, call auctions and the automatic orders (offer policies and standing bids).

Money (integers, JPY):

* A trade of ``q`` g at ``p`` JPY/t is worth ``value = ⌊q × p / 1,000,000⌋`` (rounded down: the
  buyer never pays for a fraction of a yen it did not get).
* Each side pays a fee of ``⌊value × fee_bp / 10,000⌋`` to the operator. The buyer pays
  value + fee; the seller receives value − fee.
* A bid reserves ``bid_escrow(q, p, fee_bp) = value(q, p) + fee(value(q, p))`` when placed. Because
  ⌊a⌋ + ⌊b⌋ ≤ ⌊a + b⌋, what its fills take never exceeds this, and what remains after any fill
  still covers the remaining quantity at the limit price (checked as an invariant). What is left
  when the order closes is released.

C-REV: an offer moves the units it sells from tradable to escrowed (segment reference = the order
id) when placed; a fill moves them to the buyer (tradable, or retired at once if the bid
auto-retires); closing the order returns the rest to tradable.

An order that leaves the book (filled, cancelled, expired ...) stays in the state with that status,
so a late cancel is told what happened; its history is in the events (OrderPlaced, Traded,
OrderClosed) that statements and the API index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crev.core.units import jst
from crev.errors import RuleError
from crev.ledger.books import Book, Fill
from crev.ledger.events import AuctionCleared, OrderClosed, OrderPlaced, Retired, Traded
from crev.ledger.finality import lot_is_final
from crev.ledger.holdings import available, move_units
from crev.ledger.records import (
    ASK,
    BID,
    CALL,
    ESCROWED,
    OPEN,
    RETIRED,
    TRADABLE,
    Filter,
    Lot,
    Market,
    Order,
    Retirement,
    RetireSpec,
    StandingBid,
)
from crev.ledger.state import State

G_PER_T = 1_000_000


def next_multiple(t: int, interval_s: int) -> int:
    """The first multiple of ``interval_s`` after ``t`` [unix s]."""
    return (t // interval_s + 1) * interval_s


def trade_value(quantity_g: int, price: int) -> int:
    """JPY for ``quantity_g`` at ``price`` JPY/t-CO2e, rounded down."""
    return quantity_g * price // G_PER_T


def fee(value_jpy: int, fee_bp: int) -> int:
    """One side's fee on a trade worth ``value_jpy``, rounded down."""
    return value_jpy * fee_bp // 10_000


def bid_escrow(quantity_g: int, price: int, fee_bp: int) -> int:
    """JPY a bid for ``quantity_g`` at limit ``price`` reserves (value plus the buyer's fee)."""
    v = trade_value(quantity_g, price)
    return v + fee(v, fee_bp)


def month_of(ts: int) -> int:
    """YYYYMM of the JST month containing ``ts``."""
    d = jst(ts)
    return d.year * 100 + d.month


# --- the books ------------------------------------------------------------------------------------


def book_for(state: State, market: Market) -> Book:
    """The market's order book, built from its open orders, in sequence order, the first time it
    is needed (after a restart too); the open orders come from the state's index, not a scan of
    every order ever placed."""
    book: Book | None = state.books.get(market.market_id)
    if book is None:
        book = Book(market.mode == CALL)
        orders = state.orders
        for oid in state.open_orders().in_market(market.market_id):
            _rest(state, book, orders[oid])
        state.books[market.market_id] = book
    return book


def _ask_entries(state: State, o: Order) -> list[tuple[str, Lot]]:
    return [(lot_id, state.lots[lot_id]) for lot_id, left in o.lots if left > 0]


def _rest(state: State, book: Book, o: Order) -> None:
    if o.side == BID:
        book.rest_bid(o.order_id, o.account, o.price, o.remaining_g, o.seq, o.filter)
    else:
        for lot_id, left in o.lots:
            if left > 0:
                book.rest_ask(o.order_id, o.account, o.price, left, o.seq, lot_id, state.lots[lot_id])


def finality_check(ctx: Any) -> Callable[[str], bool]:
    """lot id → whether its slot is final at the block's time (for final-only bids)."""
    st: State = ctx.state
    now = ctx.time
    return lambda lot_id: lot_is_final(st, st.lots[lot_id], now)


# --- placing, settling, closing ---------------------------------------------------------------------


def place_order(ctx: Any, order: Order, sell: list[tuple[Lot, int]]) -> list[Traded]:
    """Record ``order`` (already checked), escrow what it needs, and match it if the market is
    continuous. ``sell``: for an offer, the lots and grams it sells. Returns the trades."""
    st: State = ctx.state
    market = st.markets[order.market_id]
    book = book_for(st, market)  # built (if need be) before this order joins the open orders
    acct = st.accounts[order.account]
    escrow_g = 0
    if order.side == ASK:
        for lot, q in sell:
            move_units(lot, order.account, TRADABLE, q, None, ESCROWED, order.order_id)
            st.mark(f"l/{lot.lot_id}")
            escrow_g += q
        acct.tradable_g -= escrow_g
        acct.escrowed_g += escrow_g
        st.supply.tradable_g -= escrow_g
        st.supply.escrowed_g += escrow_g
    else:
        acct.jpy -= order.escrow_jpy
        acct.jpy_escrowed += order.escrow_jpy
    st.mark(f"a/{acct.account_id}")
    st.mark("s")
    st.orders[order.order_id] = order
    st.open_orders().add(order)
    st.mark(f"o/{order.order_id}")
    ctx.emit(OrderPlaced(order.order_id, order.market_id, order.account, order.side, order.price,
                         order.quantity_g, order.tif, order.expires_at, order.escrow_jpy, escrow_g,
                         order.origin))
    trades: list[Traded] = []
    if market.mode == CALL:
        _rest(st, book, order)
        return trades
    final = finality_check(ctx)
    if order.side == BID:
        fills = book.match_bid(order.order_id, order.account, order.price, order.remaining_g, order.filter, final)
    else:
        fills = book.match_ask(order.order_id, order.account, order.price,
                               [(lot.lot_id, lot, q) for lot, q in sell], final)
    for f in fills:
        trades.append(settle(ctx, market, f, order.side))
    if order.status == OPEN:  # not completely filled
        if order.tif in ("ioc", "fok"):
            close_order(ctx, order, order.tif)
        else:
            _rest(st, book, order)
    return trades


def settle(ctx: Any, market: Market, f: Fill, aggressor: str) -> Traded:
    """Deliver ``f.quantity_g`` of lot ``f.lot_id`` from the offer to the bid and pay for it, in one
    step (delivery versus payment). Closes whichever order is now complete."""
    st: State = ctx.state
    bid, ask = st.orders[f.bid_id], st.orders[f.ask_id]
    buyer, seller = st.accounts[bid.account], st.accounts[ask.account]
    operator = st.accounts[st.operator_id]
    q, price = f.quantity_g, f.price
    value = trade_value(q, price)
    fee_b = fee(value, market.fee_bp)
    fee_s = fee(value, market.fee_bp)
    lot = st.lots[f.lot_id]
    st.supply.trades += 1
    trade_id = f"tr-{st.supply.trades:08d}"
    rid = ""
    if bid.retire is not None:
        st.supply.retirements += 1
        rid = f"ret-{st.supply.retirements:08d}"
    moved = move_units(lot, seller.account_id, ESCROWED, q, buyer.account_id,
                       RETIRED if rid else TRADABLE, rid, from_ref=ask.order_id)
    ranges = tuple((lot.lot_id, a, b) for _, a, b in moved)
    seller.escrowed_g -= q
    st.supply.escrowed_g -= q
    if rid:
        r = bid.retire
        assert r is not None
        buyer.retired_g += q
        st.supply.retired_g += q
        st.retirements[rid] = Retirement(rid, buyer.account_id, r.beneficiary, r.purpose, r.period_start,
                                         r.period_end, r.jurisdiction, r.note,
                                         [(lot.lot_id, a, b) for _, a, b in moved], q, ctx.height,
                                         ctx.time, ctx.tx_hash)
        st.mark(f"t/{rid}")
        for _, a, b in moved:
            ctx.emit(Retired(rid, buyer.account_id, r.beneficiary, r.purpose, lot.lot_id, a, b))
    else:
        buyer.tradable_g += q
        st.supply.tradable_g += q
    # money: from the bid's reservation to the seller and the operator
    paid = value + fee_b
    bid.escrow_jpy -= paid
    buyer.jpy_escrowed -= paid
    seller.jpy += value - fee_s
    operator.jpy += fee_b + fee_s
    # the orders
    bid.remaining_g -= q
    ask.remaining_g -= q
    for entry in ask.lots:
        if entry[0] == lot.lot_id:
            entry[1] -= q
            break
    market.last_price = price
    for key in (f"l/{lot.lot_id}", f"a/{buyer.account_id}", f"a/{seller.account_id}",
                f"a/{operator.account_id}", f"o/{bid.order_id}", f"o/{ask.order_id}",
                f"m/{market.market_id}", "s"):
        st.mark(key)
    trade = Traded(trade_id, market.market_id, bid.order_id, ask.order_id, buyer.account_id,
                   seller.account_id, q, price, value, fee_b, fee_s, ranges, aggressor, rid)
    ctx.emit(trade)
    if bid.remaining_g == 0:
        close_order(ctx, bid, "filled")
    if ask.remaining_g == 0:
        close_order(ctx, ask, "filled")
    return trade


def close_order(ctx: Any, order: Order, reason: str) -> None:
    """Take ``order`` out of the book, releasing what it still reserves; it stays in the state with
    its final status (``reason``), so a late cancel is told what happened."""
    st: State = ctx.state
    acct = st.accounts[order.account]
    released_jpy = released_g = 0
    if order.side == BID:
        released_jpy = order.escrow_jpy
        acct.jpy_escrowed -= released_jpy
        acct.jpy += released_jpy
        order.escrow_jpy = 0
    else:
        for lot_id, left in order.lots:
            if left > 0:
                lot = st.lots[lot_id]
                move_units(lot, order.account, ESCROWED, left, None, TRADABLE, "", from_ref=order.order_id)
                st.mark(f"l/{lot_id}")
                released_g += left
        acct.escrowed_g -= released_g
        acct.tradable_g += released_g
        st.supply.escrowed_g -= released_g
        st.supply.tradable_g += released_g
        st.mark("s")
    book = st.books.get(order.market_id)
    if book is not None:
        book.remove(order.order_id)
    st.open_orders().remove(order.order_id)
    order.status = reason
    st.mark(f"o/{order.order_id}")
    st.mark(f"a/{acct.account_id}")
    ctx.emit(OrderClosed(order.order_id, order.account, reason, order.remaining_g, released_jpy, released_g))


# --- the clock: expiry, call auctions, standing bids -------------------------------------------------


def tick_due(state: State, now: int) -> bool:
    """Whether a market_tick at block time ``now`` has work: an order expired, a call auction due,
    or a standing bid to renew for a new month.

    Asked before every block, so it reads the open orders' expiry heap (not every order) and
    scans the standing bids only until it has seen them all renewed for this month."""
    if state.open_orders().expiry_due(now):
        return True
    if any(m.mode == CALL and m.open and m.next_clear <= now for m in state.markets.values()):
        return True
    return renewal_due(state, month_of(now))


def renewal_due(state: State, month: int) -> bool:
    """Whether a standing bid was last renewed for another month than ``month`` (YYYYMM). The
    answer "none" is remembered (``State.standing_month``) until a standing bid changes."""
    if state.standing_month == month:
        return False
    if any(sb.month != month for sb in state.standing_bids.values()):
        return True
    state.standing_month = month
    return False


def run_tick(ctx: Any) -> list[Any]:
    """Expire orders, renew standing bids, then clear due call auctions. Returns a summary."""
    st: State = ctx.state
    now = ctx.time
    orders = st.orders
    expired = [orders[oid] for oid in st.open_orders().take_expired(now)]
    for o in expired:
        close_order(ctx, o, "expired")
    renewed = 0
    month = month_of(now)
    for key in sorted(st.standing_bids) if renewal_due(st, month) else ():
        sb = st.standing_bids[key]
        if sb.month != month:
            renew_standing_bid(ctx, sb, month)
            renewed += 1
    cleared: list[list[Any]] = []
    for mid in sorted(st.markets):
        m = st.markets[mid]
        if m.mode == CALL and m.open and m.next_clear <= now:
            price, volume = clear_auction(ctx, m)
            m.next_clear = next_multiple(now, m.call_interval_s)
            st.mark(f"m/{mid}")
            cleared.append([mid, price, volume])
    return [len(expired), renewed, cleared]


def clear_auction(ctx: Any, market: Market) -> tuple[int, int]:
    """Run the call auction of ``market``; every fill at the one clearing price."""
    st: State = ctx.state
    book = book_for(st, market)
    n_bids, n_asks = book.counts()
    result = book.clear()
    volume = 0
    for f in result.fills:
        settle(ctx, market, f, "auction")
        volume += f.quantity_g
    ctx.emit(AuctionCleared(market.market_id, result.price, volume, n_bids, n_asks))
    return result.price, volume


def renew_standing_bid(ctx: Any, sb: StandingBid, month: int) -> None:
    """Replace a standing bid's order with a fresh one for ``month`` (closing the old remainder)."""
    st: State = ctx.state
    old = st.orders.get(sb.order_id)
    if old is not None and old.status == OPEN:
        close_order(ctx, old, "replaced")
    sb.month = month
    sb.order_id = ""
    market = st.markets.get(sb.market_id)
    if market is not None and market.open:
        order = new_bid(ctx, market, sb.account, sb.price, sb.monthly_g, "gtc", 0, sb.filter, sb.retire,
                        "standing_bid", afford=True)
        if order is not None:
            sb.order_id = order.order_id
            place_order(ctx, order, [])
    st.mark(f"b/{sb.account}/{sb.market_id}")


def auto_offer(ctx: Any, lot: Lot) -> None:
    """Offer the owner's policy share of a newly issued lot, in the same transaction."""
    st: State = ctx.state
    policy = st.offer_policies.get(lot.issued_to)
    if policy is None:
        return
    market = st.markets.get(policy.market_id)
    if market is None or not market.open or not market.product.matches(lot):
        return
    # (of what the owner still holds: a device's reconciliation debt may have cancelled part of it)
    q = min(lot.quantity_g * policy.share_bp // 10_000, available(lot, lot.issued_to, TRADABLE))
    if q <= 0 or q < market.min_qty_g:
        return
    order = Order(new_order_id(st), st.supply.orders, market.market_id, lot.issued_to, ASK, policy.price,
                  q, q, "gtc", 0, market.product, None, [[lot.lot_id, q]], 0, "open", ctx.height,
                  "auto_offer")
    place_order(ctx, order, [(lot, q)])


def new_order_id(st: State) -> str:
    st.supply.orders += 1
    st.mark("s")
    return f"o-{st.supply.orders:08d}"


def affordable_g(jpy: int, price: int, fee_bp: int) -> int:
    """The most grams a bid at ``price`` can reserve with ``jpy``."""
    q = jpy * 1_000_000 * 10_000 // (price * (10_000 + fee_bp))
    while q > 0 and bid_escrow(q, price, fee_bp) > jpy:
        q -= 1
    while bid_escrow(q + 1, price, fee_bp) <= jpy:
        q += 1
    return q


def new_bid(ctx: Any, market: Market, account: str, price: int, quantity_g: int, tif: str,
            expires_at: int, flt: Filter, retire: RetireSpec | None, origin: str,
            afford: bool = False) -> Order | None:
    """A checked bid order (not yet placed). With ``afford``, a bid the account cannot fully pay for
    is cut to what it can (None if that is below the market minimum); else that is refused."""
    st: State = ctx.state
    acct = st.accounts[account]
    escrow = bid_escrow(quantity_g, price, market.fee_bp)
    if escrow > acct.jpy:
        if not afford:
            raise RuleError("body.quantity_g", f"insufficient JPY: {quantity_g} g at {price} JPY/t needs "
                                               f"{escrow} JPY with the fee, {account} has {acct.jpy} "
                                               "JPY available")
        quantity_g = affordable_g(acct.jpy, price, market.fee_bp)
        if quantity_g < market.min_qty_g:
            return None
        escrow = bid_escrow(quantity_g, price, market.fee_bp)
    return Order(new_order_id(st), st.supply.orders, market.market_id, account, BID, price, quantity_g,
                 quantity_g, tif, expires_at, flt, retire, [], escrow, OPEN, ctx.height, origin)
