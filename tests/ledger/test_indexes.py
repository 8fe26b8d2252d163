"""The state's uncommitted indexes (ledger/indexes.py): open orders by market, owner and expiry, and
each account's tradable lots. What the market does with them is pinned by hand-checked values
with a history of closed orders present, by the full scans they replaced (kept here as the
reference), by a restart (indexes rebuilt from a snapshot), and by a replay through
``apply_block`` on a state whose history-sized maps refuse to be iterated."""

from __future__ import annotations

import random
from typing import Any, ClassVar

import pytest

from crev.ledger.apply import BlockBuilder, BlockOutcome, apply_block
from crev.ledger.block import Block
from crev.ledger.events import Traded
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.holdings import available
from crev.ledger.indexes import SortedKeys
from crev.ledger.messages.cancel_order import CancelOrder
from crev.ledger.messages.market_tick import MarketTick
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.ledger.reconcile import lot_is_final
from crev.ledger.records import ASK, BID, OPEN, TRADABLE, Filter
from crev.ledger.snapshot import load_state
from crev.ledger.state import State
from crev.ledger.trading import month_of, tick_due
from crev.ledger.tx import build_tx
from tests import ledger_kit
from tests.ledger.market_kit import L1, L2, make_market_kit, order, spot
from tests.ledger_kit import CHAIN, FACTORS, NOON, T0, Kit, key

L3 = "dgc-1:20260601T1230"  # dgc-1's second lot: 2,000 Wh at 450 g/kWh = 900 g


# --- the scans the indexes replaced (the previous code, verbatim in effect) ------------------------

def old_tick_due(st: State, now: int) -> bool:
    if any(o.expires_at and o.expires_at <= now and o.status == OPEN for o in st.orders.values()):
        return True
    if any(m.mode == "call" and m.open and m.next_clear <= now for m in st.markets.values()):
        return True
    return any(sb.month != month_of(now) for sb in st.standing_bids.values())


def old_expired(st: State, now: int) -> list[str]:
    return [o.order_id for o in sorted((o for o in st.orders.values()
                                        if o.expires_at and o.expires_at <= now and o.status == OPEN),
                                       key=lambda o: o.seq)]


def old_select(st: State, account: str, quantity: int, product: Filter, flt: Filter, now: int) -> list[list[Any]]:
    sell: list[list[Any]] = []
    need = quantity
    for lot in sorted((lot for lot in st.lots.values() if product.matches(lot) and flt.matches(lot)
                       and (not flt.final_only or lot_is_final(st, lot, now))),
                      key=lambda lot: (lot.interval_start, lot.lot_id)):
        have = available(lot, account, TRADABLE)
        if have:
            take = min(have, need)
            sell.append([lot.lot_id, take])
            need -= take
            if not need:
                break
    return sell


# --- helpers -------------------------------------------------------------------------------------

def genesis() -> Genesis:
    """The genesis ``make_kit`` uses."""
    return Genesis(CHAIN, T0 - 86400, "operator", "Test Operator", key("operator").public_key,
                   key("sequencer").public_key, emission_factors=FACTORS)


class Recorder(BlockBuilder):
    blocks: ClassVar[list[Block]] = []

    def finish(self) -> BlockOutcome:
        out = super().finish()
        Recorder.blocks.append(Block(out.header, b"", tuple(out.txs)))
        return out


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Block]:
    """Every block the kits build from now on, in order."""
    Recorder.blocks = []
    monkeypatch.setattr(ledger_kit, "BlockBuilder", Recorder)
    return Recorder.blocks


def many(kit: Kit, signer: str, msgs: list[Any]) -> list[Any]:
    """``msgs`` from one signer in one block; each must succeed."""
    n = kit.state.accounts[signer].nonce
    res = kit.block(*(kit.tx(signer, m, n + i) for i, m in enumerate(msgs)))
    assert all(r.ok for r in res), [r.error for r in res if not r.ok][:1]
    return [r.detail for r in res]


def one(kit: Kit, signer: str, msg: Any) -> Any:
    res = kit.one(kit.tx(signer, msg))
    assert res.ok, res.error
    return res.detail


def tick(kit: Kit, at: int) -> Any:
    kit.time = at - 10
    return kit.one(build_tx(CHAIN, MarketTick(at)))


def history(kit: Kit) -> None:
    """160 closed orders: 100 gtt bids that expired at a tick, 60 gtc bids cancelled."""
    until = kit.time + 100
    many(kit, "buyer-co", [order(BID, 10_000, 100, tif="gtt", expires_at=until) for _ in range(100)])
    res = tick(kit, until)
    assert res.ok and res.detail == [100, 0, []]
    ids = [d[0] for d in many(kit, "buyer-2", [order(BID, 10_000, 100) for _ in range(60)])]
    many(kit, "buyer-2", [CancelOrder(i) for i in ids])
    closed = [o for o in kit.state.orders.values() if o.status != OPEN]
    assert len(closed) == 160 and len(kit.state.open_orders().open) == 0


def market_with_history() -> Kit:
    kit = make_market_kit()
    history(kit)
    return kit


def closed_events(res: Any) -> list[tuple[str, str, int, int]]:
    return [(e.order_id, e.reason, e.remaining_g, e.released_jpy) for e in res.events
            if type(e).__name__ == "OrderClosed"]


# --- hand-checked: expiry, auto-selection, the book after a restart --------------------------------

def test_expiry_closes_only_the_due_open_orders_in_sequence_order_among_many_closed_ones() -> None:
    kit = market_with_history()
    t = kit.time
    x, y, z, w = (d[0] for d in many(kit, "buyer-co", [
        order(BID, 10_000, 200, tif="gtt", expires_at=t + 900),  # x: placed first, expires last
        order(BID, 10_000, 300, tif="gtt", expires_at=t + 300),  # y
        order(BID, 10_000, 100, tif="gtt", expires_at=t + 600),  # z
        order(BID, 10_000, 100, tif="gtt", expires_at=t + 300),  # w: cancelled below
    ]))
    assert (x, y, z, w) == ("o-00000161", "o-00000162", "o-00000163", "o-00000164")
    one(kit, "buyer-co", CancelOrder(w))
    st = kit.state
    for now, due in ((t + 299, False), (t + 300, True), (t + 600, True)):
        assert tick_due(st, now) is due is old_tick_due(st, now)
    assert old_expired(st, t + 600) == [y, z]
    res = tick(kit, t + 600)
    # y and z, in sequence order (not expiry order); each releases its 3 and 1 JPY reservation
    assert res.detail == [2, 0, []]
    assert closed_events(res) == [(y, "expired", 300, 3), (z, "expired", 100, 1)]
    assert not tick_due(st, t + 899) and not old_tick_due(st, t + 899)
    res = tick(kit, t + 900)
    assert closed_events(res) == [(x, "expired", 200, 2)]
    assert not tick_due(st, t + 10_000) and not old_tick_due(st, t + 10_000)
    assert st.accounts["buyer-co"].jpy_escrowed == 0


def test_an_offer_without_lots_sells_the_oldest_tradable_lots_by_start_then_lot_id() -> None:
    kit = market_with_history()
    assert [k[1] for k in kit.state.tradable_lots().lots_of("sun-co")] == [L1]  # built here, kept since
    kit.time = NOON + 3600
    res = kit.one(kit.submit(kit.reading(NOON + 1800, 2_000, 0, 0)))
    assert res.detail == [["accepted", L3, 900]]
    one(kit, "other-co", Transfer("sun-co", ((L2, 1_000),), ""))
    st = kit.state
    assert [k[1] for k in st.tradable_lots().lots_of("sun-co")] == [L1, L2, L3]
    one(kit, "sun-co", Transfer("buyer-2", ((L2, 1_000),), ""))  # sun-co is no longer named in L2
    one(kit, "sun-co", Transfer("buyer-2", ((L1, 4_000),), ""))
    # sun-co holds L1 500 g (12:00, dgc-1) and L3 900 g (12:30); L2 (12:00, dgc-2) is still listed
    assert [k[1] for k in st.tradable_lots().lots_of("sun-co")] == [L1, L2, L3]
    assert old_select(st, "sun-co", 1_000, Filter(), Filter(), kit.time) == [[L1, 500], [L3, 500]]
    oid = one(kit, "sun-co", order(ASK, 30_000, 1_000))[0]
    assert st.orders[oid].lots == [[L1, 500], [L3, 500]]
    # L2 was dropped as the offer passed it; L1 left when its last tradable gram was escrowed
    assert [k[1] for k in st.tradable_lots().lots_of("sun-co")] == [L3]
    assert [k[1] for k in st.tradable_lots().lots_of("buyer-2")] == [L1, L2]
    late = Filter(vintage_start=NOON + 1800)
    assert old_select(st, "sun-co", 400, Filter(), late, kit.time) == [[L3, 400]]
    oid = one(kit, "sun-co", order(ASK, 30_000, 400, flt=late))[0]
    assert st.orders[oid].lots == [[L3, 400]]
    res = kit.one(kit.tx("sun-co", order(ASK, 30_000, 100)))
    assert res.error is not None and res.error.to_dict() == {
        "code": "rule_violation", "field": "body.quantity_g",
        "reason": "insufficient C-REV: sun-co holds 0 g tradable that match the offer and the market, "
                  "100 g offered"}
    # a retirement unlists at once (the holder stays named in the lot, with nothing tradable)
    one(kit, "buyer-2", Retire(((L1, 4_000),), "Buyer Two", "voluntary", T0, T0 + 86400, "JP", ""))
    assert [k[1] for k in st.tradable_lots().lots_of("buyer-2")] == [L2]


def test_a_seeded_index_is_built_account_by_account_and_selects_the_same_lots() -> None:
    kit = market_with_history()
    st = kit.state
    asked: list[str] = []

    def seed(account: str) -> list[str]:  # what a node's store answers: here, every lot it holds
        asked.append(account)
        return list(st.lots)

    st.tradable_seed = seed
    st.rebuild_indexes()
    kit.time = NOON + 3600
    ok_ = kit.one(kit.submit(kit.reading(NOON + 1800, 2_000, 0, 0)))
    assert ok_.ok and asked == []  # nothing asked for yet: no account built
    one(kit, "other-co", Transfer("sun-co", ((L2, 1_000),), ""))
    assert old_select(st, "sun-co", 1_000, Filter(), Filter(), kit.time) == [[L1, 1_000]]
    oid = one(kit, "sun-co", order(ASK, 30_000, 1_000))[0]
    assert st.orders[oid].lots == [[L1, 1_000]] and asked == ["sun-co"]
    one(kit, "sun-co", Transfer("buyer-2", ((L1, 3_500),), ""))
    assert old_select(st, "sun-co", 1_200, Filter(), Filter(), kit.time) == [[L2, 1_000], [L3, 200]]
    oid = one(kit, "sun-co", order(ASK, 30_000, 1_200))[0]
    assert st.orders[oid].lots == [[L2, 1_000], [L3, 200]] and asked == ["sun-co"]  # built once
    assert [k[1] for k in st.tradable_lots().lots_of("buyer-2")] == [L1] and asked == ["sun-co", "buyer-2"]


def test_after_a_restart_the_book_is_rebuilt_from_the_open_orders_in_sequence_order() -> None:
    kit = market_with_history()
    a = one(kit, "sun-co", order(ASK, 40_000, 1_000, lots=((L1, 1_000),)))[0]
    b = one(kit, "other-co", order(ASK, 30_000, 1_000, lots=((L2, 1_000),)))[0]
    c = one(kit, "sun-co", order(ASK, 30_000, 500, lots=((L1, 500),)))[0]
    d = one(kit, "other-co", order(ASK, 20_000, 500, lots=((L2, 500),)))[0]
    one(kit, "other-co", CancelOrder(d))
    kit.state.rebuild_indexes()  # what a load does: no book, no index
    assert kit.state.books == {}
    res = kit.one(kit.tx("buyer-co", order(BID, 40_000, 2_000)))
    assert res.ok, res.error
    fills = [(e.ask_order, e.quantity_g, e.price) for e in res.events if isinstance(e, Traded)]
    assert fills == [(b, 1_000, 30_000), (c, 500, 30_000), (a, 500, 40_000)]


def test_a_snapshot_loaded_state_builds_the_same_next_blocks() -> None:
    kit = market_with_history()
    one(kit, "sun-co", order(ASK, 40_000, 1_000, tif="gtt", expires_at=kit.time + 500))
    st = kit.state
    items = [(k, v) for k in st.all_keys() if (v := st.value_of(k)) is not None]
    loaded = load_state(genesis(), items, st.height, st.last_block_hash, st.last_time)
    assert loaded.tree.root() == st.tree.root()
    twin = Kit(loaded, kit.time)
    for k in (kit, twin):
        res = k.one(k.tx("other-co", order(ASK, 30_000, 700)))
        assert res.ok and k.state.orders[res.detail[0]].lots == [[L2, 700]]
        res = tick(k, k.time + 500)
        assert res.detail == [1, 0, []]
    assert twin.state.tree.root() == kit.state.tree.root()
    assert twin.state.last_block_hash == kit.state.last_block_hash


# --- no history scans on the hot paths ------------------------------------------------------------

class NoScan(dict[Any, Any]):
    """A state map that refuses to be iterated or measured (what costs O(history))."""

    def _refuse(self, *_: Any) -> Any:
        raise AssertionError("a history-sized state map was iterated on a hot path")

    values = items = keys = __iter__ = __len__ = __reversed__ = copy = _refuse


HISTORY_MAPS = ("lots", "readings", "retirements", "tallies", "controls", "orders")


@pytest.mark.parametrize("seeded", [False, True])
def test_blocks_replayed_through_apply_block_never_iterate_lots_readings_or_orders(
        recorded: list[Block], seeded: bool) -> None:
    kit = market_with_history()
    one(kit, "operator", spot("call", mode="call", interval=1800))
    setup = len(recorded)
    # --- the blocks replayed on a guarded twin ---
    kit.time = NOON + 3600
    res = kit.one(kit.submit(kit.reading(NOON + 1800, 2_000, 0, 0),
                             kit.reading(NOON + 1800, 3_000, 0, 0, device="dgc-2")))
    assert [r[0] for r in res.detail] == ["accepted", "accepted"]
    one(kit, "other-co", Transfer("sun-co", ((L2, 1_000),), ""))
    one(kit, "sun-co", order(ASK, 30_000, 1_500))  # auto-selected: L2 1,000, L3 500
    one(kit, "sun-co", order(ASK, 20_000, 300, market="call"))  # auto-selected from L3
    bad = kit.one(kit.tx("sun-co", order(BID, 20_000, 300, market="call")))
    assert bad.error is not None and "(o-00000162)" in bad.error.reason
    t = kit.time
    many(kit, "buyer-co", [order(BID, 10_000, 200, tif="gtt", expires_at=t + 300),
                           order(BID, 25_000, 400, market="call")])
    one(kit, "buyer-co", order(BID, 35_000, 600))  # takes 600 of the 1,500 at 30,000
    one(kit, "sun-co", Retire(((L1, 100),), "Sun Co", "voluntary", T0, T0 + 86400, "JP", ""))
    res = tick(kit, max(t + 300, kit.state.markets["call"].next_clear))
    assert res.ok and res.detail[0] == 1 and res.detail[2] == [["call", 22_500, 300]]
    one(kit, "operator", spot(open_=False))  # closing the market closes its open offer
    assert kit.state.orders["o-00000161"].status == "market_closed"
    # --- the twin: the same chain from genesis, guarded from the setup's end ---
    twin = state_from_genesis(genesis())
    for block in recorded[:setup]:
        apply_block(twin, block, check_signature=False)
    if seeded:  # the lots a node's store would name: here every lot id, read past the guard
        twin.tradable_seed = lambda _account: list(dict.keys(twin.lots))
    twin.open_orders()
    twin.tradable_lots()
    for name in HISTORY_MAPS:
        setattr(twin, name, NoScan(getattr(twin, name)))
    for block in recorded[setup:]:
        apply_block(twin, block, check_signature=False)  # roots and results compared inside
    assert twin.tree.root() == kit.state.tree.root()


def test_the_guard_itself_catches_a_scan() -> None:
    kit = market_with_history()
    kit.state.orders = NoScan(kit.state.orders)
    with pytest.raises(AssertionError, match="iterated on a hot path"):
        old_tick_due(kit.state, kit.time)
    kit.state.rebuild_indexes()  # the index is built by one pass over the orders: refused too
    with pytest.raises(AssertionError, match="iterated on a hot path"):
        tick_due(kit.state, kit.time)


# --- the sorted key set ----------------------------------------------------------------------------

def test_sorted_keys_keep_order_across_blocks_and_ranges_select_by_interval_start() -> None:
    rng = random.Random(7)
    keys = [(1_800 * (i // 3), f"dev-{i % 3}:{i // 3}") for i in range(3_000)]
    shuffled = keys[:]
    rng.shuffle(shuffled)
    s = SortedKeys()
    for k in shuffled:
        s.add(k)
        s.add(k)  # twice: still once
    assert list(s) == sorted(keys) and len(s) == 3_000
    gone = set(rng.sample(keys, 1_200))
    for k in gone:
        s.discard(k)
    s.discard((5, "absent"))
    left = sorted(set(keys) - gone)
    assert list(s) == left and len(s) == 1_800
    assert keys[0] in s or keys[0] in gone
    assert all((k in s) != (k in gone) for k in keys[:300])
    # interval_start in [1,800 × 100, 1,800 × 200)
    assert list(s.irange(180_000, 360_000)) == [k for k in left if 180_000 <= k[0] < 360_000]
    assert list(s.irange(180_000, 0)) == [k for k in left if k[0] >= 180_000]
    assert list(s.irange(10**9, 0)) == []
    assert list(SortedKeys(left).irange(0, 1_800)) == [k for k in left if k[0] < 1_800]


def test_the_expiry_heap_forgets_cancelled_orders_long_before_they_would_expire() -> None:
    kit = market_with_history()
    t = kit.time
    ids = [d[0] for d in many(kit, "buyer-co", [order(BID, 10_000, 100, tif="gtt", expires_at=t + 86_400 * 365)
                                                for _ in range(200)])]
    keep = ids[:3]
    many(kit, "buyer-co", [CancelOrder(i) for i in ids[3:]])
    ix = kit.state.open_orders()
    assert sorted(oid for _, _, oid in ix.expiring if oid in ix.open) == keep
    assert len(ix.expiring) <= 64  # compacted: at most twice the open ones once past 64
    assert not tick_due(kit.state, t + 86_400 * 365 - 1)
    res = tick(kit, t + 86_400 * 365)
    assert [c[0] for c in closed_events(res)] == keep
