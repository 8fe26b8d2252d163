"""Indexes the state keeps beside its records, never commits, and rebuilds when it is loaded, so
that what a block does costs what it touches, not the history.

Closed orders stay in the state (``o/``) and lots stay forever (``l/``): scanning either per block
or per transaction grows with the chain's age. These indexes answer the market's questions from the
open orders and from each account's tradable lots instead:

* ``OpenOrders``: every open order's id by market, by (market, account, side), and the open orders
  with an expiry in a heap keyed by (expires_at, seq). It holds order ids and sequence numbers,
  never the ``Order`` records, so a state whose maps fetch records from disk again after evicting
  them (node/lazystate.py) cannot make it hold a stale copy. Closed orders leave the maps at once
  and the heap when they reach its top, or when the heap is compacted (it is, once closed orders
  outnumber the open ones there), so it stays the size of the open orders.
* ``TradableLots``: per account, the keys (interval_start, lot_id) of the lots in which it may hold
  tradable units, in that order, which is the order an offer without explicit lots sells them in
  (messages/place_order.py). The state tells it which lots changed (every change of a lot is
  marked ``l/<lot>`` for the state tree; ``State.mark`` passes those on) and it re-reads those lots
  before it is next asked and when the block is sealed. Its promise is one-sided: every lot in
  which an account holds tradable units is listed for that account; a listed lot may have none
  left (an account that gave all of a lot away is no longer named in its segments), and the reader
  re-checks each lot and drops such a key as it passes it.

Neither is consensus data: results are the same with or without them; tests compare them with the
full scans they replace.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from crev.ledger.records import OPEN, TRADABLE, Lot, Order

LotKey = tuple[int, str]  # (interval_start [unix s], lot_id): the order an offer sells lots in


class SortedKeys:
    """A sorted set of keys held in blocks of a few hundred (a list of sorted lists), so adding or
    removing one in the middle of millions moves a block, not the whole list."""

    __slots__ = ("_blocks", "_len", "_maxes")
    LOAD = 512

    def __init__(self, ordered: Iterable[LotKey] = ()) -> None:
        """``ordered``: keys already sorted and distinct."""
        keys = list(ordered)
        n = self.LOAD
        self._blocks: list[list[LotKey]] = [keys[i:i + n] for i in range(0, len(keys), n)]
        self._maxes: list[LotKey] = [b[-1] for b in self._blocks]
        self._len = len(keys)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[LotKey]:
        for block in self._blocks:
            yield from block

    def irange(self, start: int, end: int) -> Iterator[LotKey]:
        """The keys whose interval_start is in [start, end) (end 0: no end), in order."""
        lo: LotKey = (start, "")
        i = bisect_left(self._maxes, lo)
        blocks = self._blocks
        if i == len(blocks):
            return
        j = bisect_left(blocks[i], lo)
        while i < len(blocks):
            block = blocks[i]
            for k in block[j:] if j else block:
                if end and k[0] >= end:
                    return
                yield k
            i += 1
            j = 0

    def __contains__(self, k: object) -> bool:
        if not isinstance(k, tuple):
            return False
        i = bisect_left(self._maxes, k)
        if i == len(self._maxes):
            return False
        block = self._blocks[i]
        return bool(block[bisect_left(block, k)] == k)

    def add(self, k: LotKey) -> None:
        maxes, blocks = self._maxes, self._blocks
        if not blocks:
            blocks.append([k])
            maxes.append(k)
            self._len = 1
            return
        i = bisect_left(maxes, k)
        if i == len(maxes):  # after every key: the common case (a new lot is the newest)
            i -= 1
            block = blocks[i]
            block.append(k)
            maxes[i] = k
        else:
            block = blocks[i]
            j = bisect_left(block, k)
            if block[j] == k:
                return
            block.insert(j, k)
        self._len += 1
        if len(block) > 2 * self.LOAD:
            half = len(block) // 2
            blocks[i:i + 1] = [block[:half], block[half:]]
            maxes[i:i + 1] = [block[half - 1], block[-1]]

    def discard(self, k: LotKey) -> None:
        maxes, blocks = self._maxes, self._blocks
        i = bisect_left(maxes, k)
        if i == len(maxes):
            return
        block = blocks[i]
        j = bisect_left(block, k)
        if block[j] != k:
            return
        del block[j]
        self._len -= 1
        if block:
            maxes[i] = block[-1]
        else:
            del blocks[i]
            del maxes[i]


def tradable_holders(lot: Lot) -> tuple[set[str], set[str]]:
    """(accounts holding tradable units of ``lot``, every account named in its segments)."""
    holding: set[str] = set()
    named: set[str] = set()
    for s in lot.segments:
        named.add(s.holder)
        if s.status == TRADABLE and s.end > s.start:
            holding.add(s.holder)
    return holding, named


Seed = Callable[[str], Iterable[str]]  # account → ids of the lots it may hold tradable units in


class TradableLots:
    """Per account, the lots in which it may hold tradable units, by (interval_start, lot_id).

    Built either from every lot at once (``build``), or, given a ``seed``, account by account the
    first time an account is asked about: the seed names every lot in which the account may hold
    tradable units (a superset is fine: each is read and checked); ``lookup`` reads a lot. A seeded
    index follows changed lots only for the accounts it has built; the seed must cover the others."""

    __slots__ = ("by_account", "lookup", "seed")

    def __init__(self, seed: Seed | None = None, lookup: Callable[[str], Lot | None] | None = None) -> None:
        self.by_account: dict[str, SortedKeys] = {}
        self.seed = seed
        self.lookup = lookup

    @staticmethod
    def build(lots: Iterable[Lot]) -> TradableLots:
        """From every lot (one pass; what a state loaded in full already paid for)."""
        keys: dict[str, list[LotKey]] = {}
        for lot in lots:
            k = (lot.interval_start, lot.lot_id)
            for acct in tradable_holders(lot)[0]:
                keys.setdefault(acct, []).append(k)
        ix = TradableLots()
        ix.by_account = {a: SortedKeys(sorted(ks)) for a, ks in keys.items()}
        return ix

    def _keys(self, account: str) -> SortedKeys | None:
        """The account's keys, built from the seed first if need be (None: none, unseeded)."""
        keys = self.by_account.get(account)
        if keys is None and self.seed is not None:
            assert self.lookup is not None
            found: set[LotKey] = set()
            for lot_id in self.seed(account):
                lot = self.lookup(lot_id)
                if lot is not None and account in tradable_holders(lot)[0]:
                    found.add((lot.interval_start, lot.lot_id))
            keys = self.by_account[account] = SortedKeys(sorted(found))
        return keys

    def refresh(self, lot: Lot) -> None:
        """Re-read ``lot`` after its segments changed: list it for each account now holding
        tradable units of it; unlist it for its issuing owner and every other account named in it
        that holds none. (Seeded: only for the accounts already built.)"""
        k = (lot.interval_start, lot.lot_id)
        by_account = self.by_account
        grow = self.seed is None  # an unseeded index lists every account; a seeded one those built
        segments = lot.segments
        if len(segments) == 1 and segments[0].holder == lot.issued_to and segments[0].status == TRADABLE:
            keys = by_account.get(lot.issued_to)  # a lot just issued: the common case, made quick
            if keys is None and grow:
                keys = by_account[lot.issued_to] = SortedKeys()
            if keys is not None:
                keys.add(k)
            return
        holding, named = tradable_holders(lot)
        named.add(lot.issued_to)
        for acct in named:
            keys = by_account.get(acct)
            if acct in holding:
                if keys is None and grow:
                    keys = by_account[acct] = SortedKeys()
                if keys is not None:
                    keys.add(k)
            elif keys is not None:
                keys.discard(k)

    def lots_of(self, account: str, start: int = 0, end: int = 0) -> Iterator[LotKey]:
        """The account's keys with interval_start in [start, end) (end 0: no end), oldest first.
        Do not change the index while reading (``drop`` what you found empty afterwards)."""
        keys = self._keys(account)
        return iter(()) if keys is None else keys.irange(start, end)

    def count(self, account: str) -> int:
        """How many lots are listed for ``account``."""
        keys = self._keys(account)
        return 0 if keys is None else len(keys)

    def drop(self, account: str, k: LotKey) -> None:
        """Unlist a lot the reader found holds none of ``account``'s tradable units."""
        keys = self.by_account.get(account)
        if keys is not None:
            keys.discard(k)


class OpenOrders:
    """The open orders' ids by market, by (market, account, side) and by expiry."""

    __slots__ = ("by_market", "by_owner", "expiring", "open")

    def __init__(self) -> None:
        self.open: dict[str, tuple[str, str, str, int]] = {}  # order id → (market, account, side, seq)
        self.by_market: dict[str, dict[str, int]] = {}  # market → {order id: seq}
        self.by_owner: dict[tuple[str, str, str], dict[str, int]] = {}  # (market, account, side) → {id: seq}
        self.expiring: list[tuple[int, int, str]] = []  # heap of (expires_at, seq, order id)

    @staticmethod
    def build(orders: Iterable[Order]) -> OpenOrders:
        ix = OpenOrders()
        for o in orders:
            if o.status == OPEN:
                ix.add(o)
        return ix

    def add(self, o: Order) -> None:
        """Index an order that was just placed (still open). Adding one twice changes nothing."""
        if o.status != OPEN or o.order_id in self.open:
            return
        self.open[o.order_id] = (o.market_id, o.account, o.side, o.seq)
        self.by_market.setdefault(o.market_id, {})[o.order_id] = o.seq
        self.by_owner.setdefault((o.market_id, o.account, o.side), {})[o.order_id] = o.seq
        if o.expires_at:
            heapq.heappush(self.expiring, (o.expires_at, o.seq, o.order_id))

    def remove(self, order_id: str) -> None:
        """Forget an order that closed (its heap entry goes when it reaches the top)."""
        got = self.open.pop(order_id, None)
        if got is None:
            return
        market, account, side, _ = got
        ids = self.by_market[market]
        del ids[order_id]
        if not ids:
            del self.by_market[market]
        owner = (market, account, side)
        ids = self.by_owner[owner]
        del ids[order_id]
        if not ids:
            del self.by_owner[owner]
        heap = self.expiring
        if len(heap) > 64 and len(heap) > 2 * len(self.open):  # mostly closed orders: compact
            self.expiring = [e for e in heap if e[2] in self.open]
            heapq.heapify(self.expiring)

    def in_market(self, market_id: str) -> list[str]:
        """The market's open order ids, in sequence order."""
        ids = self.by_market.get(market_id, {})
        return sorted(ids, key=ids.__getitem__)

    def first_of(self, market_id: str, account: str, side: str) -> str | None:
        """The account's earliest open order on ``side`` of the market, if any."""
        ids = self.by_owner.get((market_id, account, side))
        return min(ids, key=ids.__getitem__) if ids else None

    def _drop_closed(self) -> None:
        heap = self.expiring
        while heap and heap[0][2] not in self.open:
            heapq.heappop(heap)

    def expiry_due(self, now: int) -> bool:
        """Whether an open order expires at or before ``now``."""
        self._drop_closed()
        return bool(self.expiring) and self.expiring[0][0] <= now

    def take_expired(self, now: int) -> list[str]:
        """The open orders expiring at or before ``now``, in sequence order; they leave the heap
        (the caller closes them)."""
        heap = self.expiring
        due: dict[str, int] = {}
        while heap and heap[0][0] <= now:
            _, seq, oid = heapq.heappop(heap)
            if oid in self.open:
                due[oid] = seq
        return sorted(due, key=due.__getitem__)

