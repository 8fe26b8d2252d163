"""Order books: the matching engine the state machine uses. Pure: integers only, no clock, no I/O;
the same calls in the same order give the same fills on every node.

Time priority is each order's sequence number (``seq``), never a wall clock. Prices are JPY per
t-CO2e, quantities g-CO2e.

How a book is organised, so that the cost of matching grows with the work done, not with the size
of the book (no bids × offers rescans):

* Offers are *entries*, one per lot an offer sells (a lot carries its attributes: grid area,
  technology, FIT, device, vintage). Entries are grouped by attribute *class* (grid area,
  technology, FIT); each class has its own price levels: a sorted list of prices (``bisect``) and
  a FIFO deque per price.
* Bids are grouped by their *filter* (bids with identical filters share one group, for example
  every unfiltered bid); each group has its own price levels, best (highest) first.
* An incoming bid visits only the offer classes its filter admits and merges their levels by
  (price, seq) lazily (``heapq.merge``); it stops at its limit price or when filled. An incoming
  offer visits the bid groups whose filter admits its lot, merged by (−price, seq). The cost is
  O(fills + entries skipped + classes or groups visited × log), independent of how many orders
  rest beyond the limit.
* Entries are removed lazily: a cancelled order's entries are marked dead and dropped when they
  reach the head of their level.
* An entry skipped because it belongs to the incoming order's own account (self-trade
  prevention) or because a bid's device, vintage or final-only condition excludes it stays where
  it is. Whether a lot is final depends on state and the block's time, not on the book: the caller
  passes ``final(lot_id) → bool`` (ledger/reconcile.py ``lot_is_final``). A resting final-only bid
  meets a lot that became final after it rested when either side next trades (a new order).

The call auction (``clear``) is documented at the function.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from crev.ledger.records import Filter, Lot

ClassKey = tuple[str, str, bool]


class Entry:
    """One resting quantity: a bid, or one lot of an offer."""

    __slots__ = ("account", "alive", "device_id", "home", "lot_id", "order_id", "price", "qty", "seq", "vintage")

    def __init__(self, order_id: str, account: str, price: int, qty: int, seq: int, lot_id: str = "",
                 device_id: str = "", vintage: int = 0) -> None:
        self.order_id = order_id
        self.account = account
        self.price = price
        self.qty = qty
        self.seq = seq
        self.lot_id = lot_id
        self.device_id = device_id
        self.vintage = vintage
        self.alive = True
        self.home: Levels | None = None  # an offer's class levels (to tidy after a fill)


class Fill(NamedTuple):
    bid_id: str
    ask_id: str
    lot_id: str
    quantity_g: int
    price: int  # JPY per t-CO2e


@dataclass(frozen=True, slots=True)
class Clearing:
    price: int  # 0 when nothing crossed
    volume_g: int
    fills: list[Fill]


class Levels:
    """Price levels of one side of one class or group. ``keys`` ascend: prices for offers,
    negated prices for bids, so ``keys[0]`` is always the best level."""

    __slots__ = ("keys", "queues")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.queues: dict[int, deque[Entry]] = {}

    def add(self, key: int, e: Entry) -> None:
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = deque()
            insort(self.keys, key)
        q.append(e)

    def stream(self, limit_key: int) -> Iterator[Entry]:
        """Live entries with key ≤ ``limit_key``, best first, in seq order within a level."""
        keys, queues = self.keys, self.queues
        i = 0
        while i < len(keys):
            k = keys[i]
            if k > limit_key:
                return
            for e in queues[k]:
                if e.alive and e.qty > 0:
                    yield e
            i += 1

    def tidy(self) -> None:
        """Drop dead or empty entries from the heads of levels, and empty levels."""
        keys, queues = self.keys, self.queues
        drop: list[int] = []
        for k in keys:
            q = queues[k]
            while q and (not q[0].alive or q[0].qty <= 0):
                q.popleft()
            if not q:
                drop.append(k)
            else:
                break
        for k in drop:
            del queues[k]
            keys.pop(bisect_left(keys, k))

    def entries(self) -> Iterator[Entry]:
        for k in self.keys:
            for e in self.queues[k]:
                if e.alive and e.qty > 0:
                    yield e


def class_admits(f: Filter, key: ClassKey) -> bool:
    area, tech, fit = key
    return ((not f.grid_areas or area in f.grid_areas) and (not f.technologies or tech in f.technologies)
            and (f.fit < 0 or fit == bool(f.fit)))


def entry_admits(f: Filter, e: Entry) -> bool:
    return ((not f.devices or e.device_id in f.devices) and e.vintage >= f.vintage_start
            and (not f.vintage_end or e.vintage < f.vintage_end))


Final = Callable[[str], bool]  # lot id → whether its slot is final at the block's time


def _never(_lot_id: str) -> bool:
    return False


def _conditional(f: Filter) -> bool:
    """Whether a filter needs each lot checked (beyond its attribute class)."""
    return bool(f.devices or f.vintage_start or f.vintage_end or f.final_only)


class Book:
    def __init__(self, call: bool = False) -> None:
        self.call = call
        self.all_asks = Levels()  # every offer entry, for bids that accept any class
        self.asks: dict[ClassKey, Levels] = {}  # the same entries by attribute class
        self.bids: dict[Filter, Levels] = {}
        self.by_order: dict[str, list[Entry]] = {}
        # caches, dropped whenever a new class or group appears
        self._classes_for: dict[Filter, list[Levels]] = {}
        # per offer class: the bid groups that admit it without looking at the lot, and the
        # groups whose device or vintage condition must be checked lot by lot
        self._groups_for: dict[ClassKey, tuple[list[Levels], list[tuple[Filter, Levels]]]] = {}

    # --- resting ---------------------------------------------------------------------------------

    def rest_bid(self, order_id: str, account: str, price: int, qty: int, seq: int, flt: Filter) -> None:
        e = Entry(order_id, account, price, qty, seq)
        lv = self.bids.get(flt)
        if lv is None:
            lv = self.bids[flt] = Levels()
            self._groups_for.clear()
        lv.add(-price, e)
        e.home = lv
        self.by_order[order_id] = [e]

    def rest_ask(self, order_id: str, account: str, price: int, qty: int, seq: int, lot_id: str,
                 lot: Lot) -> None:
        e = Entry(order_id, account, price, qty, seq, lot_id, lot.device_id, lot.interval_start)
        if not self.call:  # a call market's bids take no filters: no need for the class index
            key = (lot.grid_area, lot.technology, lot.fit)
            lv = self.asks.get(key)
            if lv is None:
                lv = self.asks[key] = Levels()
                self._classes_for.clear()
            lv.add(price, e)
            e.home = lv
        self.all_asks.add(price, e)
        self.by_order.setdefault(order_id, []).append(e)

    def remove(self, order_id: str) -> None:
        for e in self.by_order.pop(order_id, ()):
            e.alive = False

    def counts(self) -> tuple[int, int]:
        """(open bid orders, open offer orders)."""
        bids = sum(1 for lv in self.bids.values() for _ in lv.entries())
        asks = len({e.order_id for e in self.all_asks.entries()})
        return bids, asks

    # --- continuous matching -------------------------------------------------------------------

    def _ask_stream(self, account: str, price: int, flt: Filter, final: Final = _never) -> Iterator[Entry]:
        """Offers a bid at ``price`` with filter ``flt`` may take, best (price, seq) first."""
        if not flt.grid_areas and not flt.technologies and flt.fit < 0:
            merged: Iterator[Entry] = self.all_asks.stream(price)
        else:
            streams = [lv.stream(price) for key, lv in self.asks.items() if class_admits(flt, key)]
            if not streams:
                return
            merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_ask_order)
        plain = not _conditional(flt)
        for e in merged:
            if e.account != account and (plain or (entry_admits(flt, e) and (not flt.final_only or final(e.lot_id)))):
                yield e

    def _bid_stream(self, account: str, price: int, lot: Lot, final: Final = _never) -> Iterator[Entry]:
        """Bids that accept ``lot`` at ``price`` or better, best (−price, seq) first."""
        streams = [lv.stream(-price) for flt, lv in self.bids.items()
                   if flt.matches(lot) and (not flt.final_only or final(lot.lot_id))]
        if not streams:
            return
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_bid_order)
        for e in merged:
            if e.account != account:
                yield e

    def fillable_bid(self, account: str, price: int, qty: int, flt: Filter, final: Final = _never) -> int:
        """How much of a bid would fill at once (for fill-or-kill), without changing anything."""
        got = 0
        for e in self._ask_stream(account, price, flt, final):
            got += e.qty
            if got >= qty:
                return qty
        return got

    def fillable_ask(self, account: str, price: int, sell: list[tuple[str, Lot, int]],
                     final: Final = _never) -> int:
        used: dict[int, int] = {}
        got = 0
        for _lot_id, lot, q in sell:
            left = q
            for e in self._bid_stream(account, price, lot, final):
                free = e.qty - used.get(id(e), 0)
                if free <= 0:
                    continue
                take = min(free, left)
                used[id(e)] = used.get(id(e), 0) + take
                left -= take
                if not left:
                    break
            got += q - left
        return got

    def _ask_levels_for(self, flt: Filter) -> list[Levels]:
        if not flt.grid_areas and not flt.technologies and flt.fit < 0:
            return [self.all_asks]
        got = self._classes_for.get(flt)
        if got is None:
            got = self._classes_for[flt] = [lv for key, lv in self.asks.items() if class_admits(flt, key)]
        return got

    def _bid_levels_for(self, lot: Lot, final: Final) -> list[Levels]:
        key = (lot.grid_area, lot.technology, lot.fit)
        cached = self._groups_for.get(key)
        if cached is None:
            admitted = [(f, lv) for f, lv in self.bids.items() if class_admits(f, key)]
            cached = self._groups_for[key] = (
                [lv for f, lv in admitted if not _conditional(f)],
                [(f, lv) for f, lv in admitted if _conditional(f)])
        plain, conditional = cached
        if not conditional:
            return plain
        return plain + [lv for f, lv in conditional
                        if f.matches(lot) and (not f.final_only or final(lot.lot_id))]

    def match_bid(self, order_id: str, account: str, price: int, qty: int, flt: Filter,
                  final: Final = _never) -> list[Fill]:
        """Match an incoming bid against resting offers; returns the fills (at each offer's price)."""
        sources = self._ask_levels_for(flt)
        check = None if not _conditional(flt) else \
            (lambda e: entry_admits(flt, e) and (not flt.final_only or final(e.lot_id)))
        fills: list[Fill] = []
        takes = _sweep(sources, price, account, qty, check, fills, order_id, "")
        if takes:
            self.all_asks.tidy()
            for home in {id(e.home): e.home for e in takes}.values():
                if home is not None:
                    home.tidy()
        return fills

    def match_ask(self, order_id: str, account: str, price: int, sell: list[tuple[str, Lot, int]],
                  final: Final = _never) -> list[Fill]:
        """Match an incoming offer, lot by lot in the order given, against resting bids."""
        fills: list[Fill] = []
        touched: dict[int, Levels] = {}
        for lot_id, lot, q in sell:
            for e in _sweep(self._bid_levels_for(lot, final), -price, account, q, None, fills, order_id, lot_id):
                if e.home is not None:
                    touched[id(e.home)] = e.home
        for lv in touched.values():
            lv.tidy()
        return fills

    # --- call auction ------------------------------------------------------------------------------

    def clear(self) -> Clearing:
        """Clear a call auction: one price for every fill.

        * Candidate prices are the limit prices of the resting orders. At price p, demand D(p) is
          the bids with limit ≥ p and supply S(p) the offers with limit ≤ p. The clearing price
          maximises the executed volume min(D, S); among equals, the one with the smallest
          imbalance |D − S|; among those, the middle of their range, rounded down to a yen
          (every price in that range executes the same volume).
        * Each side receives the volume by price priority: whole price levels fill, best first;
          the first level that cannot fill completely (on the long side) is rationed pro rata to
          quantity, in whole grams, the grams left over by rounding going one by one in order of
          the largest remainder, then seq.
        * Filled bids and offers are paired in priority order (bids by price then seq, offers by
          price then seq) to say which lot's units go to which buyer. Call markets refuse an
          order against the same account's opposite order, so no pair is a self-trade.
        * Everything that does not fill stays in the book for the next auction.
        """
        bid_side = self._bid_levels()
        ask_side = [(k, q) for k, q in self.all_asks.queues.items()]
        ask_side.sort(key=lambda kq: kq[0])
        bid_all = [(p, sum([e.qty for e in q if e.alive])) for p, q in bid_side]
        ask_all = [(p, sum([e.qty for e in q if e.alive])) for p, q in ask_side]
        bid_tot = [x for x in bid_all if x[1] > 0]
        ask_tot = [x for x in ask_all if x[1] > 0]
        if not bid_tot or not ask_tot or bid_tot[0][0] < ask_tot[0][0]:
            return Clearing(0, 0, [])
        prices = sorted({p for p, _ in bid_tot} | {p for p, _ in ask_tot})
        demand: dict[int, int] = {}
        total, i = 0, 0
        for p in reversed(prices):  # bids are best (highest) first
            while i < len(bid_tot) and bid_tot[i][0] >= p:
                total += bid_tot[i][1]
                i += 1
            demand[p] = total
        best: tuple[int, int] | None = None
        chosen: list[int] = []
        total, i = 0, 0
        for p in prices:  # offers are best (lowest) first
            while i < len(ask_tot) and ask_tot[i][0] <= p:
                total += ask_tot[i][1]
                i += 1
            score = (min(demand[p], total), -abs(demand[p] - total))
            if best is None or score > best:
                best, chosen = score, [p]
            elif score == best:
                chosen.append(p)
        assert best is not None
        volume = best[0]
        if volume == 0:
            return Clearing(0, 0, [])
        price = (chosen[0] + chosen[-1]) // 2
        bid_fill, bid_full = _allocate([(q, t) for (p, q), (_, t) in zip(bid_side, bid_all, strict=True)
                                        if p >= price], volume)
        ask_fill, ask_full = _allocate([(q, t) for (p, q), (_, t) in zip(ask_side, ask_all, strict=True)
                                        if p <= price], volume)
        fills: list[Fill] = []
        append = fills.append
        new = tuple.__new__  # Fill(...) without the NamedTuple constructor's overhead (a third)
        ai = 0
        a, a_left = ask_fill[0]
        for b, bq in bid_fill:
            b.qty -= bq
            bid_id = b.order_id
            while bq > 0:
                take = bq if bq < a_left else a_left
                append(new(Fill, (bid_id, a.order_id, a.lot_id, take, price)))
                bq -= take
                a_left -= take
                if a_left == 0:
                    ai += 1
                    if ai < len(ask_fill):
                        a, a_left = ask_fill[ai]
        for e, q in ask_fill:
            e.qty -= q
        # levels that filled completely leave at once; the marginal one is tidied from its head
        groups = list(self.bids.values())
        for lv, n in ((self.all_asks, ask_full), (groups[0] if len(groups) == 1 else None, bid_full)):
            if lv is not None:
                for k in lv.keys[:n]:
                    del lv.queues[k]
                del lv.keys[:n]
        for lv in [*groups, *self.asks.values(), self.all_asks]:
            lv.tidy()
        return Clearing(price, volume, fills)

    def _bid_levels(self) -> list[tuple[int, list[Entry] | deque[Entry]]]:
        """Bid price levels, best first, each in seq order (merging filter groups if several)."""
        groups = list(self.bids.values())
        if len(groups) == 1:
            lv = groups[0]
            return [(-k, lv.queues[k]) for k in lv.keys]
        merged: dict[int, list[Entry]] = {}
        for lv in groups:
            for k in lv.keys:
                merged.setdefault(-k, []).extend(lv.queues[k])
        return [(p, sorted(merged[p], key=lambda e: e.seq)) for p in sorted(merged, reverse=True)]


def _sweep(sources: list[Levels], limit: int, account: str, qty: int, check: Callable[[Entry], bool] | None,
           fills: list[Fill], order_id: str, lot_id: str) -> list[Entry]:
    """Take up to ``qty`` from the entries of ``sources`` with key ≤ ``limit``, best key first and
    by seq within a key across sources, skipping the incoming order's own account and entries
    ``check`` refuses. Changes the entries' quantities, appends a Fill per take to ``fills`` (an
    incoming bid when ``lot_id`` is "", else an incoming offer of that lot) and returns the
    entries taken from."""
    takes: list[Entry] = []
    bid_in = not lot_id
    new = tuple.__new__
    left = qty
    if len(sources) == 1:
        queues = sources[0].queues
        for k in sources[0].keys:
            if k > limit:
                break
            for e in queues[k]:
                if e.alive and e.qty > 0 and e.account != account and (check is None or check(e)):
                    take = e.qty if e.qty < left else left
                    e.qty -= take
                    left -= take
                    takes.append(e)
                    fills.append(new(Fill, (order_id, e.order_id, e.lot_id, take, e.price) if bid_in
                                     else (e.order_id, order_id, lot_id, take, e.price)))
                    if not left:
                        return takes
        return takes
    # several sources: walk their levels together, best key first, through a heap of heads
    heads = [(lv.keys[0], i, 0) for i, lv in enumerate(sources) if lv.keys and lv.keys[0] <= limit]
    heapq.heapify(heads)
    while left and heads:
        best = heads[0][0]
        at: list[tuple[int, int]] = []
        while heads and heads[0][0] == best:
            _, i, p = heapq.heappop(heads)
            at.append((i, p))
        level: Iterable[Entry] = sources[at[0][0]].queues[best] if len(at) == 1 else \
            sorted((e for i, _ in at for e in sources[i].queues[best]), key=lambda e: e.seq)
        for e in level:
            if e.alive and e.qty > 0 and e.account != account and (check is None or check(e)):
                take = e.qty if e.qty < left else left
                e.qty -= take
                left -= take
                takes.append(e)
                fills.append(new(Fill, (order_id, e.order_id, e.lot_id, take, e.price) if bid_in
                                 else (e.order_id, order_id, lot_id, take, e.price)))
                if not left:
                    break
        for i, p in at:
            keys = sources[i].keys
            if p + 1 < len(keys) and keys[p + 1] <= limit:
                heapq.heappush(heads, (keys[p + 1], i, p + 1))
    return takes


def _ask_order(e: Entry) -> tuple[int, int]:
    return (e.price, e.seq)


def _bid_order(e: Entry) -> tuple[int, int]:
    return (-e.price, e.seq)


def _allocate(levels: list[tuple[Any, int]], volume: int) -> tuple[list[tuple[Entry, int]], int]:
    """Give ``volume`` to the entries of ``levels`` ((entries in seq order, their total), best first):
    whole levels fill in priority order; the first level that cannot fill completely is rationed
    pro rata to quantity, in whole grams, the grams left by rounding going one by one by largest
    remainder, then seq. Entries getting 0 are left out. Also returns how many leading levels
    filled completely."""
    out: list[tuple[Entry, int]] = []
    left = volume
    full = 0
    for q, total in levels:
        if left <= 0:
            break
        if total <= left:
            out += [(e, e.qty) for e in q if e.alive and e.qty > 0]
            left -= total
            full += 1
            continue
        level = [e for e in q if e.alive and e.qty > 0]
        base = [(e, left * e.qty // total, left * e.qty % total) for e in level]
        extra = left - sum(b for _, b, _ in base)
        order = sorted(range(len(base)), key=lambda k: (-base[k][2], base[k][0].seq, k))
        bonus = set(order[:extra])
        out += [(e, b + (k in bonus)) for k, (e, b, _) in enumerate(base) if b + (k in bonus) > 0]
        left = 0
    return out, full
