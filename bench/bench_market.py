"""Matching engine speed (crev.market): continuous matching of N random orders, without and with
attribute filters, and the clearing time of one call auction over N resting orders.

    python bench/bench_market.py [--orders 1000000] [--seed 7] [--profile]

Random orders: 1,000 accounts; prices 20,000 … 40,000 JPY/t-CO2e in 100-yen ticks, bids around
29,000 and offers around 31,000 (σ 3,000), so about half the orders cross on arrival; quantities
100 … 5,000 g; each offer sells one of 400 lots spread over 10 grid areas, 2 technologies, FIT and
non-FIT, with 48 vintages (30-minute slots). All GTC. "With filters": 30 % of the bids carry one of
20 filters — one to three grid areas (80 % of filters), one technology (30 %), non-FIT only (50 %),
a vintage window over half the slots (20 %). The orders (ids, lots) are built before the clock
starts: what is timed is ``place_bid`` / ``place_ask`` and everything they do (matching, fills,
resting, closing filled orders).

The baseline is the simplest price-time matcher — two heaps, no filters, no self-trade check, no
lots, no records — run on the same orders in the same process, so the ratio says what the engine's
features cost on this machine whatever its speed today (the VM is noisy).

The call auction rests N orders (bids and offers alternately, 500 buyers and 500 sellers, prices
20,000 … 40,000) and clears once; both times are printed, the clearing time is the target.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import os
import pstats
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import machine
from crev.market import ANY, AskLot, CallBook, ContinuousBook, Filter, LotAttributes

AREAS = ("hokkaido", "tohoku", "tokyo", "chubu", "hokuriku", "kansai", "chugoku", "shikoku", "kyushu",
         "okinawa")
TECHS = ("solar_pv", "wind")
SLOT0 = 1_780_000_000 // 1800


def lot_attrs(n: int) -> list[LotAttributes]:
    return [LotAttributes(AREAS[i % 10], TECHS[(i // 10) % 2], i % 3 == 0, f"dev-{i}", SLOT0 + i % 48)
            for i in range(n)]


def filters(rng: random.Random) -> list[Filter]:
    out = []
    for _ in range(20):
        areas = rng.sample(AREAS, rng.randint(1, 3)) if rng.random() < 0.8 else []
        techs = [rng.choice(TECHS)] if rng.random() < 0.3 else []
        fit = False if rng.random() < 0.5 else None
        window = (SLOT0, SLOT0 + 24) if rng.random() < 0.2 else (None, None)
        out.append(Filter.of(areas, techs, fit, (), *window))
    return out


# side, order id, account, price, quantity [g], filter (bids), lot (offers)
Order = tuple[bool, str, str, int, int, Filter, tuple[AskLot, ...]]


def orders(n: int, seed: int, filtered: bool) -> list[Order]:
    rng = random.Random(seed)
    attrs = lot_attrs(400)
    flts = filters(rng)
    names = [f"acct-{i}" for i in range(1000)]
    out: list[Order] = []
    none: tuple[AskLot, ...] = ()
    for seq in range(1, n + 1):
        bid = rng.random() < 0.5
        off = int(rng.gauss(0, 3_000)) // 100 * 100
        price = max(20_000, min(40_000, 29_000 + off if bid else 31_000 + off))
        qty = rng.randint(100, 5_000)
        acct = names[rng.randrange(1000)]
        if bid:
            flt = rng.choice(flts) if filtered and rng.random() < 0.3 else ANY
            out.append((True, f"o{seq}", acct, price, qty, flt, none))
        else:
            li = rng.randrange(400)
            out.append((False, f"o{seq}", acct, price, qty, ANY, (AskLot(f"lot-{li}", qty, attrs[li]),)))
    return out


def run_engine(os_: list[Order]) -> tuple[float, int, int]:
    """Returns (seconds, fills, orders resting at the end)."""
    book = ContinuousBook()
    place_bid, place_ask = book.place_bid, book.place_ask
    fills = 0
    t = time.perf_counter()
    for seq, (bid, oid, acct, price, qty, flt, lots) in enumerate(os_, 1):
        if bid:
            fills += len(place_bid(oid, acct, price, qty, seq, flt)[0])
        else:
            fills += len(place_ask(oid, acct, price, seq, lots)[0])
    return time.perf_counter() - t, fills, len(book)


def run_baseline(os_: list[Order]) -> float:
    """The simplest price-time matcher: two heaps, whole-quantity bookkeeping, nothing else."""
    bids: list[list[int]] = []
    asks: list[list[int]] = []
    t = time.perf_counter()
    for seq, (bid, _oid, _acct, price, qty, _flt, _lots) in enumerate(os_, 1):
        if bid:
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


def auction_orders(n: int, seed: int) -> list[tuple[bool, str, str, int, int, tuple[AskLot, ...]]]:
    rng = random.Random(seed)
    attrs = lot_attrs(400)
    out = []
    for seq in range(1, n + 1):
        price = 20_000 + rng.randrange(201) * 100
        qty = rng.randint(100, 5_000)
        if seq % 2:
            out.append((True, f"o{seq}", f"b{seq % 500}", price, qty, ()))
        else:
            a = attrs[seq % 400]
            out.append((False, f"o{seq}", f"s{seq % 500}", price, qty, (AskLot(f"lot-{seq % 400}", qty, a),)))
    return out


def run_auction(n: int, seed: int) -> tuple[float, float, int | None, int, int]:
    """Rest n orders in a call book, then clear once. Returns (rest s, clear s, price, volume, fills)."""
    os_ = auction_orders(n, seed)
    book = CallBook()
    t = time.perf_counter()
    for seq, (bid, oid, acct, price, qty, lots) in enumerate(os_, 1):
        if bid:
            book.place_bid(oid, acct, price, qty, seq)
        else:
            book.place_ask(oid, acct, price, seq, lots)
    rest_s = time.perf_counter() - t
    t = time.perf_counter()
    result = book.clear()
    return rest_s, time.perf_counter() - t, result.price, result.volume_g, len(result.fills)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true", help="cProfile the filtered continuous run")
    a = ap.parse_args(argv)
    n = a.orders
    print(f"machine: {machine()}")
    # the embedded node's garbage-collector setting (node/node.py): young-generation collections
    # are rarer, as for any process holding millions of long-lived records
    gc.set_threshold(50_000, 20, 100)
    for filtered in (False, True):
        os_ = orders(n, a.seed, filtered)
        gc.collect()
        gc.freeze()
        base = run_baseline(os_)
        secs, fills, resting = run_engine(os_)
        label = "with filters   " if filtered else "without filters"
        print(f"continuous {label}: {n:,} orders in {secs:.2f} s = {n / secs:,.0f} orders/s, {fills:,} fills, "
              f"{resting:,} resting | baseline heap matcher {n / base:,.0f} orders/s | "
              f"engine/baseline speed {base / secs:.2f}")
        if filtered and a.profile:
            prof = cProfile.Profile()
            prof.runcall(run_engine, os_)
            pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        del os_
        gc.unfreeze()
        gc.collect()
    rest_s, clear_s, price, volume, nfills = run_auction(n, a.seed)
    print(f"call auction: {n:,} orders rested in {rest_s:.2f} s ({n / rest_s:,.0f} orders/s), "
          f"cleared in {clear_s:.2f} s at {price:,} JPY/t-CO2e: {volume:,} g in {nfills:,} fills")


if __name__ == "__main__":
    main()
