"""Matching engine speed (ledger/books.py): continuous matching of N random orders, without and with
attribute filters, and the clearing time of one call auction over N orders.

    python bench/bench_market.py [--orders 1000000] [--seed 7]

Random orders: 1,000 accounts; prices 20,000 … 40,000 JPY/t in 100-yen ticks around a mid of
30,000 (so about half the orders cross); quantities 100 … 5,000 g; offers sell one of 400 lots in
10 grid areas, FIT and non-FIT. "With filters": 30 % of the bids accept one to three grid areas
and half of those only non-FIT. What a filled resting order does in the ledger (its entry leaves
the book) is done here too. The baseline is a plain heapq price-priority loop over the same
orders (no filters, no self-trade check, no lots): the same process's speed for the simplest
possible matcher, so the ratio says what the engine's features cost on this machine.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import machine
from crev.ledger.books import Book
from crev.ledger.records import ANY, Filter, Lot

AREAS = ("hokkaido", "tohoku", "tokyo", "chubu", "hokuriku", "kansai", "chugoku", "shikoku", "kyushu",
         "okinawa")


def lots(n: int) -> list[Lot]:
    return [Lot(f"dev-{i}:20260601T1200", 1, 10**9, f"dev-{i}", "x", 0, 1_780_000_000 + i * 1800, 0, 0, 450,
                "", "solar_pv", 0, 0, AREAS[i % 10], i % 3 == 0, 0, 0, b"", "reading", "")
            for i in range(n)]


Order = tuple[str, int, int, int, Filter, int]  # side, account, price, qty, filter, lot index


def orders(n: int, seed: int, filtered: bool) -> list[Order]:
    rng = random.Random(seed)
    filters = [Filter(grid_areas=tuple(sorted(rng.sample(AREAS, rng.randint(1, 3)))),
                      fit=rng.choice((-1, 0))) for _ in range(20)]
    out: list[Order] = []
    for _ in range(n):
        side = "bid" if rng.random() < 0.5 else "ask"
        mid = 30_000
        off = int(rng.gauss(0, 3_000)) // 100 * 100
        price = max(20_000, min(40_000, mid - 1_000 + off if side == "bid" else mid + 1_000 + off))
        flt = rng.choice(filters) if filtered and side == "bid" and rng.random() < 0.3 else ANY
        out.append((side, rng.randrange(1000), price, rng.randint(100, 5_000), flt, rng.randrange(400)))
    return out


def run_engine(os_: list[Order], lot_list: list[Lot]) -> tuple[float, int]:
    book = Book()
    names = [f"a{i}" for i in range(1000)]
    fills_n = 0
    t = time.perf_counter()
    for seq, (side, acct, price, qty, flt, li) in enumerate(os_, 1):
        oid = f"o{seq}"
        if side == "bid":
            fills = book.match_bid(oid, names[acct], price, qty, flt)
            got = 0
            for f in fills:
                got += f.quantity_g
                if book.by_order[f.ask_id][0].qty == 0:
                    book.remove(f.ask_id)
            if got < qty:
                book.rest_bid(oid, names[acct], price, qty - got, seq, flt)
        else:
            lot = lot_list[li]
            fills = book.match_ask(oid, names[acct], price, [(lot.lot_id, lot, qty)])
            got = 0
            for f in fills:
                got += f.quantity_g
                if book.by_order[f.bid_id][0].qty == 0:
                    book.remove(f.bid_id)
            if got < qty:
                book.rest_ask(oid, names[acct], price, qty - got, seq, lot.lot_id, lot)
        fills_n += len(fills)
    return time.perf_counter() - t, fills_n


def run_baseline(os_: list[Order]) -> float:
    """The simplest price-time matcher: two heaps, whole-quantity bookkeeping, nothing else."""
    bids: list[list[int]] = []
    asks: list[list[int]] = []
    t = time.perf_counter()
    for seq, (side, _acct, price, qty, _flt, _li) in enumerate(os_, 1):
        if side == "bid":
            while qty and asks and asks[0][0] <= price:
                top = asks[0]
                take = min(qty, top[2])
                top[2] -= take
                qty -= take
                if not top[2]:
                    heapq.heappop(asks)
            if qty:
                heapq.heappush(bids, [-price, seq, qty])
        else:
            while qty and bids and -bids[0][0] >= price:
                top = bids[0]
                take = min(qty, top[2])
                top[2] -= take
                qty -= take
                if not top[2]:
                    heapq.heappop(bids)
            if qty:
                heapq.heappush(asks, [price, seq, qty])
    return time.perf_counter() - t


def run_auction(n: int, seed: int, lot_list: list[Lot]) -> tuple[float, float, int, int]:
    """Rest n orders in a call book, then clear once. Returns (rest s, clear s, price, volume)."""
    rng = random.Random(seed)
    book = Book(call=True)
    t = time.perf_counter()
    for seq in range(1, n + 1):
        price = 20_000 + rng.randrange(201) * 100
        qty = rng.randint(100, 5_000)
        if seq % 2:
            book.rest_bid(f"o{seq}", f"b{seq % 500}", price, qty, seq, ANY)
        else:
            lot = lot_list[seq % len(lot_list)]
            book.rest_ask(f"o{seq}", f"s{seq % 500}", price, qty, seq, lot.lot_id, lot)
    rest_s = time.perf_counter() - t
    t = time.perf_counter()
    result = book.clear()
    return rest_s, time.perf_counter() - t, result.price, result.volume_g


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    n = a.orders
    print(f"machine: {machine()}")
    # the embedded node's garbage-collector setting (node/node.py): long-lived state is frozen and
    # young-generation collections are rarer, as for any process holding millions of records
    gc.set_threshold(50_000, 20, 100)
    lot_list = lots(400)
    for filtered in (False, True):
        os_ = orders(n, a.seed, filtered)
        gc.collect()
        gc.freeze()
        base = run_baseline(os_)
        secs, fills = run_engine(os_, lot_list)
        label = "with filters   " if filtered else "without filters"
        print(f"continuous {label}: {n:,} orders in {secs:.2f} s = {n / secs:,.0f} orders/s, {fills:,} fills "
              f"| baseline heap matcher {n / base:,.0f} orders/s | engine/baseline speed {base / secs:.2f}")
    rest_s, clear_s, price, volume = run_auction(n, a.seed, lot_list)
    print(f"call auction: {n:,} orders rested in {rest_s:.2f} s, cleared in {clear_s:.2f} s "
          f"at {price:,} JPY/t, {volume:,} g")


if __name__ == "__main__":
    main()
