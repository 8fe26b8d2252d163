"""The matching engine (ledger/books.py) against simple reference implementations.

* Continuous matching is compared fill by fill with a list-scanning matcher that applies the rules
  literally: an incoming order takes the eligible resting orders (other account, acceptable lot, price
  no worse than its limit) in price-then-seq order, at their price.
* The call auction is compared with a brute-force evaluation of every candidate price.
* A book rebuilt from the resting orders (what a restarted node does) matches exactly like the
  original from then on.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crev.ledger.books import Book, Fill
from crev.ledger.records import ANY, Filter, Lot

AREAS = ("tokyo", "kansai", "kyushu")


def lot(i: int) -> Lot:
    return Lot(f"lot-{i}", 1, 10**9, f"dev-{i % 4}", "x", 0, 1_000 + i, 0, 0, 450, "", "solar_pv", 0, 0,
               AREAS[i % 3], i % 2 == 0, 0, 0, b"", "reading", "")


LOTS = [lot(i) for i in range(6)]
FILTERS = [ANY, Filter(grid_areas=("tokyo",)), Filter(grid_areas=("kansai", "kyushu"), fit=0),
           Filter(devices=("dev-1", "dev-2")), Filter(vintage_start=1_002)]


@dataclass
class Resting:
    order_id: str
    account: str
    price: int
    qty: int
    seq: int
    flt: Filter | None  # bids
    lot: Lot | None  # offers


class Reference:
    """Continuous matching by scanning lists: slow, obviously right."""

    def __init__(self) -> None:
        self.bids: list[Resting] = []
        self.asks: list[Resting] = []

    def bid(self, oid: str, acct: str, price: int, qty: int, seq: int, flt: Filter) -> list[Fill]:
        fills = []
        for a in sorted((a for a in self.asks if a.account != acct and a.price <= price and a.qty > 0
                         and a.lot is not None and flt.matches(a.lot)), key=lambda a: (a.price, a.seq)):
            take = min(a.qty, qty)
            a.qty -= take
            qty -= take
            assert a.lot is not None
            fills.append(Fill(oid, a.order_id, a.lot.lot_id, take, a.price))
            if not qty:
                break
        if qty:
            self.bids.append(Resting(oid, acct, price, qty, seq, flt, None))
        return fills

    def ask(self, oid: str, acct: str, price: int, qty: int, seq: int, the_lot: Lot) -> list[Fill]:
        fills = []
        for b in sorted((b for b in self.bids if b.account != acct and b.price >= price and b.qty > 0
                         and b.flt is not None and b.flt.matches(the_lot)), key=lambda b: (-b.price, b.seq)):
            take = min(b.qty, qty)
            b.qty -= take
            qty -= take
            fills.append(Fill(b.order_id, oid, the_lot.lot_id, take, b.price))
            if not qty:
                break
        if qty:
            self.asks.append(Resting(oid, acct, price, qty, seq, None, the_lot))
        return fills

    def cancel(self, oid: str) -> None:
        for r in self.bids + self.asks:
            if r.order_id == oid:
                r.qty = 0


Op = tuple[str, int, int, int, int, int]  # kind, account, price, qty, filter or lot index, target

ops = st.lists(st.tuples(st.sampled_from(["bid", "ask", "ask", "bid", "cancel"]), st.integers(0, 3),
                         st.integers(90, 110), st.integers(1, 50), st.integers(0, 5), st.integers(0, 200)),
               min_size=1, max_size=120)


def play(book: Book, ref: Reference | None, program: list[Op], start_seq: int = 1) -> list[Fill]:
    out: list[Fill] = []
    for n, (kind, acct_i, price, qty, pick, target) in enumerate(program, start_seq):
        acct, oid = f"acct-{acct_i}", f"o-{n}"
        if kind == "cancel":
            victim = f"o-{1 + target % n}"
            book.remove(victim)
            if ref:
                ref.cancel(victim)
            continue
        if kind == "bid":
            flt = FILTERS[pick % len(FILTERS)]
            fills = book.match_bid(oid, acct, price, qty, flt)
            if ref:
                assert fills == ref.bid(oid, acct, price, qty, n, flt)
            rest = qty - sum(f.quantity_g for f in fills)
            if rest:
                book.rest_bid(oid, acct, price, rest, n, flt)
        else:
            the_lot = LOTS[pick]
            fills = book.match_ask(oid, acct, price, [(the_lot.lot_id, the_lot, qty)])
            if ref:
                assert fills == ref.ask(oid, acct, price, qty, n, the_lot)
            rest = qty - sum(f.quantity_g for f in fills)
            if rest:
                book.rest_ask(oid, acct, price, rest, n, the_lot.lot_id, the_lot)
        for f in fills:  # a filled resting order leaves the book, as the ledger does
            for side_id in (f.bid_id, f.ask_id):
                if side_id != oid and all(e.qty == 0 for e in book.by_order.get(side_id, [])):
                    book.remove(side_id)
        out += fills
        if ref:
            check_not_crossed(ref)
    return out


def check_not_crossed(ref: Reference) -> None:
    """No resting bid could take a resting offer: any crossing pair is one account's own."""
    for b in ref.bids:
        for a in ref.asks:
            if b.qty and a.qty and b.price >= a.price and b.flt is not None and a.lot is not None \
                    and b.flt.matches(a.lot):
                assert b.account == a.account, (b, a)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_continuous_matching_equals_the_reference_fill_by_fill(program: list[Op]) -> None:
    fills = play(Book(), Reference(), program)
    placed = {f"o-{n}": qty for n, (kind, _, _, qty, _, _) in enumerate(program, 1) if kind != "cancel"}
    for f in fills:  # quantities are conserved: no order gives or gets more than it placed
        placed[f.bid_id] -= f.quantity_g
        placed[f.ask_id] -= f.quantity_g
    assert all(v >= 0 for v in placed.values())


@settings(max_examples=200, deadline=None)
@given(ops, ops)
def test_a_book_rebuilt_from_its_resting_orders_matches_the_same(first: list[Op], then: list[Op]) -> None:
    book = Book()
    play(book, None, first)
    rebuilt = Book()
    resting = sorted({id(e): e for lv in [*book.bids.values(), book.all_asks] for e in lv.entries()}.values(),
                     key=lambda e: e.seq)
    for e in resting:
        if e.lot_id:
            the_lot = next(x for x in LOTS if x.lot_id == e.lot_id)
            rebuilt.rest_ask(e.order_id, e.account, e.price, e.qty, e.seq, e.lot_id, the_lot)
        else:
            flt = next(f for f, lv in book.bids.items() if e in lv.entries())
            rebuilt.rest_bid(e.order_id, e.account, e.price, e.qty, e.seq, flt)
    start = len(first) + 1
    assert play(book, None, then, start) == play(rebuilt, None, then, start)


# --- call auction ----------------------------------------------------------------------------------


def brute_force(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> tuple[int, int]:
    """(price, volume) by evaluating every candidate price from scratch (the documented rule)."""
    prices = sorted({p for p, _ in bids} | {p for p, _ in asks})
    scored = []
    for p in prices:
        d = sum(q for bp, q in bids if bp >= p)
        s = sum(q for ap, q in asks if ap <= p)
        scored.append(((min(d, s), -abs(d - s)), p))
    best = max(sc for sc, _ in scored)
    if best[0] == 0:
        return 0, 0
    tied = [p for sc, p in scored if sc == best]
    return (min(tied) + max(tied)) // 2, best[0]


side = st.lists(st.tuples(st.integers(95, 105), st.integers(1, 40)), min_size=1, max_size=30)


@settings(max_examples=500, deadline=None)
@given(side, side)
def test_the_call_auction_agrees_with_brute_force(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
    book = Book(call=True)
    seq = 0
    for i, (p, q) in enumerate(bids):
        seq += 1
        book.rest_bid(f"b-{i}", f"buyer-{i % 3}", p, q, seq, ANY)
    for i, (p, q) in enumerate(asks):
        seq += 1
        book.rest_ask(f"a-{i}", f"seller-{i % 3}", p, q, seq, LOTS[i % 6].lot_id, LOTS[i % 6])
    result = book.clear()
    price, volume = brute_force(bids, asks)
    assert (result.price, result.volume_g) == (price, volume)
    got_b: dict[str, int] = {}
    got_a: dict[str, int] = {}
    for f in result.fills:
        assert f.price == price
        got_b[f.bid_id] = got_b.get(f.bid_id, 0) + f.quantity_g
        got_a[f.ask_id] = got_a.get(f.ask_id, 0) + f.quantity_g
    assert sum(got_b.values()) == sum(got_a.values()) == volume
    # level priority: a better-priced order is never filled less (in proportion) than a worse one,
    # and at the marginal level each gets its pro-rata share within one gram
    for orders, got, better in ((bids, got_b, lambda x, y: x > y), (asks, got_a, lambda x, y: x < y)):
        prefix = "b" if orders is bids else "a"
        for i, (p, q) in enumerate(orders):
            g = got.get(f"{prefix}-{i}", 0)
            assert 0 <= g <= q
            if g < q:  # not full: nothing strictly worse got anything
                for j, (p2, _) in enumerate(orders):
                    if better(p, p2):
                        assert got.get(f"{prefix}-{j}", 0) == 0
        if volume:
            level_p = [p for i, (p, q) in enumerate(orders) if 0 < got.get(f"{prefix}-{i}", 0) < q]
            for lp in set(level_p):
                members = [(i, q) for i, (p, q) in enumerate(orders) if p == lp]
                total = sum(q for _, q in members)
                given_ = sum(got.get(f"{prefix}-{i}", 0) for i, _ in members)
                for i, q in members:
                    exact = given_ * q / total
                    assert abs(got.get(f"{prefix}-{i}", 0) - exact) < 1, (lp, members)


def test_a_hand_worked_call_auction() -> None:
    book = Book(call=True)
    book.rest_ask("a1", "s1", 20_000, 2_000, 1, "lot-0", LOTS[0])
    book.rest_ask("a2", "s2", 30_000, 2_000, 2, "lot-1", LOTS[1])
    book.rest_bid("b1", "x1", 35_000, 3_000, 3, ANY)
    book.rest_bid("b2", "x2", 25_000, 2_000, 4, ANY)
    r = book.clear()
    assert (r.price, r.volume_g) == (32_500, 3_000)
    assert r.fills == [Fill("b1", "a1", "lot-0", 2_000, 32_500), Fill("b1", "a2", "lot-1", 1_000, 32_500)]
    assert book.counts() == (1, 1)  # b2 and the rest of a2 wait for the next auction
