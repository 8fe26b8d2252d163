"""State on disk: the node reads its checkpoint lazily and, after each checkpoint it writes, drops
from memory the records and state-tree buckets that checkpoint holds (node/lazystate.py ``evict``).
Its state roots stay those of a plain in-memory ``State`` fed the same blocks, its memory holds the
fleet (accounts, devices) plus what changed since the last written checkpoint, and a restart
reads O(fleet) records, not O(history)."""

from __future__ import annotations

import threading
from contextlib import closing
from pathlib import Path

import pytest

from crev.core.encoding import decode, encode
from crev.core.units import fiscal_year_bounds
from crev.errors import InvalidBlock
from crev.ledger.apply import apply_block
from crev.ledger.block import Block
from crev.ledger.genesis import Genesis, state_from_genesis
from crev.ledger.invariants import check_invariants
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.ledger.state import State
from crev.node.lazystate import LazyRecords, checkpoint_of, resident_records
from crev.node.node import DB_FILE, GENESIS_FILE, Node
from crev.node.store import Store
from tests.node import nodekit as k

DEVICES = 4
NOTHING = {"lots": 0, "readings": 0, "retirements": 0, "tallies": 0, "controls": 0, "orders": 0}


def reference(d: Path) -> State:
    """A plain in-memory state: genesis + every stored block through apply_block."""
    st = state_from_genesis(Genesis.from_json((d / GENESIS_FILE).read_text("utf-8")))
    with closing(Store(d / DB_FILE)) as store:
        for block in store.blocks():
            apply_block(st, block)
    return st


def lot_id(dev: int, j: int) -> str:
    """The lot of device ``dev``'s j-th reading (60 s intervals from 09:00 JST on T0)."""
    return f"dgc-{dev}:20260601T09{j:02d}"


def test_every_checkpoint_evicts_and_the_roots_stay_those_of_a_plain_state(tmp_path: Path) -> None:
    """Blocks through the manual path with a checkpoint after each (written at once: no writer
    thread), so after each block the node holds no lot, reading record, retirement or tally and
    no state-tree bucket; each block's root equals the plain state's, byte for byte."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    s = k.register_fleet(node, DEVICES)
    node.stop()  # from here on, blocks come only through finalize_block / commit
    ref = reference(d)
    assert ref.tree.root() == node.state.tree.root()
    p0, p1 = fiscal_year_bounds(2026)
    t = k.NOW
    try:
        for j in range(12):
            txs = [k.batch(DEVICES, j)]
            if j % 4 == 3:  # sell part of an earlier lot and retire part of what was bought
                txs.append(s.tx(k.OWNER, Transfer(k.BUYER, ((lot_id(j % DEVICES, j - 3), 50),), f"sale {j}")))
                txs.append(s.tx(k.BUYER, Retire(((lot_id(j % DEVICES, j - 3), 20),), "Buyer Co", "re100", p0, p1,
                                                "JP", f"retirement {j}")))
            t += 10
            out = node.finalize_block(txs, t)
            assert all(r.ok for r in out.results), [r.error for r in out.results]
            height = node.commit()
            block = node.store.block(height)
            assert isinstance(block, Block)
            apply_block(ref, block)
            assert node.state.tree.root() == ref.tree.root() == out.header.state_root
            assert resident_records(node.state) == NOTHING
            assert node.state.tree.loaded_buckets() == 0  # type: ignore[attr-defined]
        # what was evicted reads back as the plain state has it
        assert node.state.lots[lot_id(3, 3)] == ref.lots[lot_id(3, 3)]
        assert node.state.lots[lot_id(3, 3)].quantity_g == k.PER_READING_G
        assert node.state.retirements["ret-00000003"] == ref.retirements["ret-00000003"]
        assert dict(node.state.tallies.items()) == ref.tallies  # every tally, fetched back
        assert node.state.supply == ref.supply
        check_invariants(ref)
        node.check()  # the chain-wide check reads every record back from the store
        assert resident_records(node.state)["lots"] == len(ref.lots) == 12 * DEVICES
    finally:
        node.close()


def test_the_writer_thread_and_the_sealer_agree_with_a_plain_state(tmp_path: Path) -> None:
    """The running node (checkpoints written on the writer thread, evicted by the sealer whenever it
    finds one written): every block's state root is the plain state's, and after ``flush`` it holds
    no big-kind record and no bucket."""
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    blocks: list[Block] = []
    seen = threading.Lock()

    def listen(block: Block, _outcome: object) -> None:
        with seen:
            blocks.append(block)

    node.listeners.append(listen)
    try:
        k.register_fleet(node, DEVICES)
        for j in range(40):
            r = node.submit_wait(k.batch(DEVICES, j))
            assert r.ok and r.committed, r.error
        node.flush()
        ref = reference(d)
        with seen:
            by_height = {b.header.height: b for b in blocks}
        replayed = state_from_genesis(Genesis.from_json((d / GENESIS_FILE).read_text("utf-8")))
        with closing(Store(d / DB_FILE)) as store:
            for block in store.blocks():
                apply_block(replayed, block)  # raises if a block's state root is not the plain state's
                if block.header.height in by_height:
                    assert by_height[block.header.height].header.state_root == replayed.tree.root()
        with node.lock:
            assert node.state.tree.root() == ref.tree.root() == replayed.tree.root()
            assert resident_records(node.state) == NOTHING
            assert node.state.tree.loaded_buckets() == 0  # type: ignore[attr-defined]
        assert len(ref.lots) == 40 * DEVICES
    finally:
        node.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger of 4 devices × 60 readings (240 lots, 240 reading records, 4 × 2 slot tallies),
    checkpointed at its head."""
    d = k.init_dir(tmp_path_factory.mktemp("ondisk") / "ledger")
    node = k.open_node(d, checkpoint_s=0.5)
    try:
        k.register_fleet(node, DEVICES)
        for j in range(0, 60, 6):
            futs = [node.submit(k.batch(DEVICES, i)) for i in range(j, j + 6)]
            for f in futs:
                assert f.result(60).ok
    finally:
        node.close()
    return d


def test_a_restart_reads_the_fleet_not_the_history(history: Path) -> None:
    """A restart decodes the accounts (operator, owner, buyer) and the 4 devices: 7 records,
    whatever the history holds, and no lot until one is asked for."""
    node = Node(history, verify_threads=1)
    try:
        st = node.state
        cp = checkpoint_of(st)
        assert cp is not None and isinstance(st.lots, LazyRecords)
        assert cp.decoded == 3 + DEVICES
        assert resident_records(st) == NOTHING
        # the buckets of g, s, the 2 factor rows and the 7 records at most: not the 500 entries' buckets
        assert st.tree.fetches <= 11  # type: ignore[attr-defined]
        assert st.lots[lot_id(2, 59)].quantity_g == k.PER_READING_G
        assert cp.decoded == 3 + DEVICES + 1
        assert st.tree.root() == reference(history).tree.root()
    finally:
        node.close()


def test_a_forged_state_row_is_refused_when_read(history: Path, tmp_path: Path) -> None:
    """Changed bytes in the state table are refused when the node reads the record (its bucket no
    longer hashes to the one the signed checkpoint root commits to), at start and after eviction."""
    import shutil

    d = tmp_path / "ledger"
    shutil.copytree(history, d)
    key = f"l/{lot_id(1, 7)}"

    def forge() -> None:
        with closing(k.sql(d)) as db:
            v = decode(bytes(db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0]))
            v[v.index(k.PER_READING_G)] += 1
            db.execute("UPDATE state SET value = ? WHERE key = ?", (encode(v), key))

    forge()
    node = k.open_node(d, start=False, checkpoint_s=0.0)
    try:
        cp = node.state.height
        message = (rf"^state: state bucket \d+ as stored \(\d+ entries: .*{key!r}.*\) does not hash to the bucket "
                   rf"hash that block {cp}'s signed state root commits to: the database was changed after the "
                   r"checkpoint was written; refusing to read it: run `crev verify`$")
        with pytest.raises(InvalidBlock, match=message):
            node.state.lots[lot_id(1, 7)]
        assert node.state.lots[lot_id(1, 8)].quantity_g == k.PER_READING_G  # another bucket reads fine
    finally:
        node.close()


@pytest.mark.parametrize("forged", ["CAST(value AS TEXT)", "length(value)", "CAST(length(value) AS REAL)"])
def test_a_state_value_of_another_sqlite_type_is_read_as_its_bytes(history: Path, tmp_path: Path, forged: str) -> None:
    """SQLite keeps a value of any type in a BLOB column. The state is read as bytes: a value turned
    into text holding the same bytes (not even valid UTF-8 here) reads back as the same record, and
    a number is refused like changed bytes, naming its bucket."""
    import shutil

    d = tmp_path / "ledger"
    shutil.copytree(history, d)
    key = f"l/{lot_id(2, 5)}"
    with closing(k.sql(d)) as db:
        assert db.execute(f"UPDATE state SET value = {forged} WHERE key = ?", (key,)).rowcount == 1
        assert db.execute("SELECT typeof(value) FROM state WHERE key = ?", (key,)).fetchone()[0] != "blob"
    node = k.open_node(d, start=False, checkpoint_s=0.0)
    try:
        if forged.startswith("CAST(value"):
            assert node.state.lots[lot_id(2, 5)].quantity_g == k.PER_READING_G
        else:
            with pytest.raises(InvalidBlock, match=rf"^state: state bucket \d+ as stored \(\d+ entries: "
                                                   rf".*{key!r}.*\) does not hash to the bucket hash"):
                node.state.lots[lot_id(2, 5)]
        assert node.state.lots[lot_id(2, 6)].quantity_g == k.PER_READING_G
    finally:
        node.close()


def test_a_row_forged_while_the_node_runs_is_refused_after_eviction(history: Path, tmp_path: Path) -> None:
    """Evicted buckets are checked against the tree's current bucket hash when fetched again."""
    import shutil

    d = tmp_path / "ledger"
    shutil.copytree(history, d)
    node = k.open_node(d, start=False, checkpoint_s=0.0)
    try:
        lot = node.state.lots[lot_id(0, 5)]
        assert resident_records(node.state)["lots"] == 1
        out = node.finalize_block([k.batch(DEVICES, 60)], k.NOW)
        assert out.results[0].ok
        node.commit()  # checkpoint written at once, then evicted
        assert resident_records(node.state) == NOTHING
        with closing(k.sql(d)) as db:
            v = decode(bytes(db.execute("SELECT value FROM state WHERE key = ?", (f"l/{lot.lot_id}",)).fetchone()[0]))
            v[v.index(k.PER_READING_G)] += 1
            db.execute("UPDATE state SET value = ? WHERE key = ?", (encode(v), f"l/{lot.lot_id}"))
        with pytest.raises(InvalidBlock, match=rf"^state: state bucket \d+ as stored .* does not hash to the bucket "
                                               rf"hash that block {out.header.height}'s signed state root"):
            node.state.lots[lot.lot_id]
    finally:
        node.close()


def test_lazy_records_evict_keeps_only_what_the_store_lacks() -> None:
    """``evict(keep)`` forgets every other record and removal; they are fetched again from the
    store (here: a dict standing for it) on next use."""
    stored = {"a": 1, "b": 2, "c": 3}
    fetched: list[str] = []

    def fetch(key: str) -> int | None:
        fetched.append(key)
        return stored.get(key)

    recs: LazyRecords[str, int] = LazyRecords(fetch, lambda skip: [(x, v) for x, v in stored.items() if not skip(x)])
    assert recs["a"] == 1 and recs["b"] == 2
    recs["d"] = 4  # new since the checkpoint: not stored yet
    del recs["c"]  # removed since the checkpoint
    recs.pop("b")  # removed, and the store will have it removed
    stored.pop("b")
    assert fetched == ["a", "b", "c"]
    assert recs.evict(["d", "c"]) == 1  # "a" and "d" were held: "a" is dropped, "d" stays
    assert recs.resident() == 1 and dict(dict.items(recs)) == {"d": 4}
    assert "c" not in recs and "b" not in recs  # "c": still removed (kept); "b": fetched, absent from the store
    assert recs["a"] == 1
    assert fetched == ["a", "b", "c", "b", "a"]
    assert sorted(recs) == ["a", "d"]  # complete again: stored "a" (held), "c" removed, plus "d"


def seal(node: Node, txs: list[bytes], t: int) -> None:
    """One block of ``txs`` at time ``t`` through the manual path, every transaction accepted."""
    out = node.finalize_block(txs, t)
    assert all(r.ok for r in out.results), [r.error for r in out.results]
    node.commit()


def restarted(d: Path) -> Node:
    """The node on ``d`` opened again (its state read lazily from the checkpoint), stopped so that
    blocks come only through the manual path."""
    node = k.open_node(d, checkpoint_s=0.0)
    node.stop()
    return node


def test_after_a_restart_an_offer_naming_no_lots_reads_its_sellers_lots_not_every_lot(tmp_path: Path) -> None:
    """The tradable-lot index of a node whose lots are on disk is seeded from the store's index
    rows (issued to, transferred to, bought by): an offer naming no lots reads the seller's lots
    only, picks the same lots a plain state picks, and the roots stay the plain state's."""
    from crev.ledger.messages.deposit_jpy import DepositJpy
    from crev.ledger.messages.list_market import ListMarket
    from crev.ledger.messages.place_order import PlaceOrder
    from crev.ledger.records import ANY, ASK, BID

    def ask(qty: int, lots: tuple[tuple[str, int], ...] = ()) -> PlaceOrder:
        return PlaceOrder("spot", ASK, 30_000, qty, "gtc", 0, ANY, lots, None)

    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    s = k.register_fleet(node, DEVICES)
    node.stop()
    t = k.NOW
    try:
        for j in range(6):  # 24 lots issued to the owner, 315 g each
            txs = [k.batch(DEVICES, j)]
            if j == 5:  # the buyer is given 50 g of device 1's second lot and buys 100 g of device 2's third
                txs += [s.tx(k.OWNER, Transfer(k.BUYER, ((lot_id(1, 1), 50),), "sale")),
                        s.tx(k.OPERATOR, ListMarket("spot", "spot market", "continuous", ANY, 1_000, 200_000,
                                                    10, 100, 0, True)),
                        s.tx(k.OPERATOR, DepositJpy(k.BUYER, 1_000, "BANK-1")),
                        s.tx(k.OWNER, ask(100, ((lot_id(2, 2), 100),))),
                        s.tx(k.BUYER, PlaceOrder("spot", BID, 30_000, 100, "gtc", 0, ANY, (), None))]
            t += 10
            seal(node, txs, t)
    finally:
        node.close()
    node = restarted(d)
    try:
        st = node.state
        cp = checkpoint_of(st)
        assert cp is not None and resident_records(st)["lots"] == 0
        before = cp.decoded
        out = node.finalize_block([s.tx(k.BUYER, ask(140))], t + 10)
        assert out.results[0].ok, out.results[0].error
        oid = out.results[0].detail[0]
        assert st.orders[oid].lots == [[lot_id(1, 1), 50], [lot_id(2, 2), 90]]  # oldest first
        assert cp.decoded - before == 2  # the lots the buyer was given or bought, not the 24
        node.commit()
        out = node.finalize_block([s.tx(k.OWNER, ask(400))], t + 20)
        assert out.results[0].ok, out.results[0].error
        # oldest first by (interval start, lot id): device 0's first lot whole, then 85 g of device 1's
        assert st.orders[out.results[0].detail[0]].lots == [[lot_id(0, 0), 315], [lot_id(1, 0), 85]]
        node.commit()
        ref = reference(d)
        assert node.state.tree.root() == ref.tree.root()
        assert ref.orders[oid].lots == [[lot_id(1, 1), 50], [lot_id(2, 2), 90]]
    finally:
        node.close()


def test_listing_retirements_reads_the_page_not_every_retirement(tmp_path: Path) -> None:
    """`GET /v1/retirements` on a node whose retirements are on disk: the unfiltered list is the
    newest ids by number, the filtered one comes from the store's index rows plus what is held
    since the checkpoint; either reads the page's records, not all of them."""
    from crev.service import queries

    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    s = k.register_fleet(node, DEVICES)
    node.stop()
    p0, p1 = fiscal_year_bounds(2026)
    t = k.NOW

    def retire(signer: str, lot: str, note: str) -> bytes:
        return s.tx(signer, Retire(((lot, 1),), "Co", "re100", p0, p1, "JP", note))

    try:
        txs = [k.batch(DEVICES, 0), s.tx(k.OWNER, Transfer(k.BUYER, ((lot_id(3, 0), 10),), "sale"))]
        # 12 retirements: the buyer's are the 4th, 8th and 12th
        txs += [retire(k.BUYER if n % 4 == 3 else k.OWNER, lot_id(n % 3, 0) if n % 4 != 3 else lot_id(3, 0), f"r{n}")
                for n in range(12)]
        seal(node, txs, t + 10)
    finally:
        node.close()
    node = restarted(d)
    try:
        st, store = node.state, node.store
        cp = checkpoint_of(st)
        assert cp is not None and resident_records(st)["retirements"] == 0
        before = cp.decoded
        got = queries.retirements(st, store, None, 2, 3)
        assert [r["retirement_id"] for r in got["items"]] == ["ret-00000010", "ret-00000009", "ret-00000008"]
        assert got["total"] == 12 and cp.decoded - before == 3
        got = queries.retirements(st, store, k.BUYER, 0, 50)
        assert [r["retirement_id"] for r in got["items"]] == ["ret-00000012", "ret-00000008", "ret-00000004"]
        assert got["total"] == 3 and {r["account"] for r in got["items"]} == {k.BUYER}
        assert queries.retirements(st, store, k.OWNER, 0, 2)["total"] == 9
        # one made after the checkpoint (held, not in the index rows yet) comes first in both lists
        out = node.finalize_block([retire(k.BUYER, lot_id(3, 0), "late")], t + 20)
        assert out.results[0].ok, out.results[0].error
        assert store.checkpoint_height() < st.height
        assert queries.retirements(st, store, None, 0, 1)["items"][0]["retirement_id"] == "ret-00000013"
        got = queries.retirements(st, store, k.BUYER, 0, 2)
        assert [r["retirement_id"] for r in got["items"]] == ["ret-00000013", "ret-00000012"] and got["total"] == 4
    finally:
        node.close()


def test_closed_orders_leave_memory_and_the_open_ones_come_back_from_the_order_index(tmp_path: Path) -> None:
    """An offer policy places an order per lot, so closed orders grow with the history as lots do:
    the node holds only the open ones (evicting the others after each checkpoint) and, after a
    restart, finds them through the store's ``ix_orders``, not by reading every order. The roots,
    the open orders and an account's order list stay the plain state's."""
    from crev.ledger.messages.deposit_jpy import DepositJpy
    from crev.ledger.messages.list_market import ListMarket
    from crev.ledger.messages.place_order import PlaceOrder
    from crev.ledger.messages.set_offer_policy import SetOfferPolicy
    from crev.ledger.records import ANY, BID
    from crev.service import queries

    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    s = k.register_fleet(node, DEVICES)
    node.stop()
    t = k.NOW + 10
    # the buyer bids for 10 lots' worth (10 × 315 g); the owner offers all of each new lot at the bid's price
    seal(node, [s.tx(k.OPERATOR, ListMarket("spot", "spot market", "continuous", ANY, 1_000, 200_000, 10, 100, 0,
                                            True)),
                 s.tx(k.OPERATOR, DepositJpy(k.BUYER, 10_000, "BANK-1")),
                 s.tx(k.BUYER, PlaceOrder("spot", BID, 30_000, 10 * k.PER_READING_G, "gtc", 0, ANY, (), None)),
                 s.tx(k.OWNER, SetOfferPolicy("spot", 10_000, 30_000))], t)
    try:
        for j in range(6):  # 4 lots a block, each offered whole: the first 10 fill the bid, 14 stay open
            t += 10
            seal(node, [k.batch(DEVICES, j)], t)
            st = node.state
            open_ids = sorted(st.open_orders().open)
            assert sorted(dict.keys(st.orders)) == open_ids  # the checkpoint is written: the closed ones left
            assert resident_records(st)["orders"] == len(open_ids) == (1, 1, 2, 6, 10, 14)[j]
        assert st.orders["o-00000001"].status == "filled"  # read back from disk
    finally:
        node.close()
    ref = reference(d)
    assert ref.supply.orders == 25 and sum(o.status == "filled" for o in ref.orders.values()) == 11
    node = restarted(d)
    try:
        st, store = node.state, node.store
        cp = checkpoint_of(st)
        assert cp is not None and st.tree.root() == ref.tree.root()
        assert sorted(dict.keys(st.orders)) == sorted(st.open_orders().open) == sorted(ref.open_orders().open)
        assert sorted(st.open_orders().open) == [f"o-{n:08d}" for n in range(12, 26)]
        assert store.open_order_ids() == [f"o-{n:08d}" for n in range(12, 26)]  # in sequence order
        before = cp.decoded
        got = queries.account_orders(st, store, k.OWNER, "ask", None, 0, 3)
        assert ([o["order_id"] for o in got["items"]], got["total"]) == (["o-00000025", "o-00000024", "o-00000023"], 24)
        assert cp.decoded == before  # open: held
        got = queries.account_orders(st, store, k.OWNER, None, "spot", 14, 3)
        assert [(o["order_id"], o["status"], o["remaining_g"]) for o in got["items"]] == [
            ("o-00000011", "filled", 0), ("o-00000010", "filled", 0), ("o-00000009", "filled", 0)]
        assert cp.decoded - before == 3  # the page's closed orders, not the 10
        assert queries.account_orders(st, store, k.BUYER, "ask", None, 0, 50)["total"] == 0
        assert [o["order_id"] for o in queries.account_orders(st, store, k.BUYER, None, None, 0, 50)["items"]] == [
            "o-00000001"]
        # an order placed after the checkpoint (held, not in ix_orders yet) comes first
        out = node.finalize_block([s.tx(k.BUYER, PlaceOrder("spot", BID, 1_000, 10, "gtc", 0, ANY, (), None))], t + 10)
        assert out.results[0].ok, out.results[0].error
        got = queries.account_orders(st, store, k.BUYER, "bid", None, 0, 50)
        assert [o["order_id"] for o in got["items"]] == ["o-00000026", "o-00000001"] and got["total"] == 2
        node.commit()
        ref = reference(d)
        assert st.tree.root() == ref.tree.root()
        plain = sorted((o for o in ref.orders.values() if o.account == k.OWNER), key=lambda o: -o.seq)
        assert queries.account_orders(st, store, k.OWNER, None, None, 0, 50)["items"] == [
            queries.order_row(o) for o in plain]
    finally:
        node.close()


def market_with_offers(tmp_path: Path, offers: int) -> tuple[Path, Node, k.Signers]:
    """A ledger with one reading per device, a continuous market ``spot`` and the owner's offers of
    100 g of the first lot of each of devices 0 … ``offers`` − 1 (orders o-00000001 …, at 30,000 +
    n JPY/t), written as a checkpoint; the node stopped (blocks through the manual path), still open."""
    from crev.ledger.messages.list_market import ListMarket
    from crev.ledger.messages.place_order import PlaceOrder
    from crev.ledger.records import ANY, ASK

    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d, checkpoint_s=0.0)
    s = k.register_fleet(node, DEVICES)
    node.stop()
    try:
        seal(node, [k.batch(DEVICES, 0),
                    s.tx(k.OPERATOR, ListMarket("spot", "spot market", "continuous", ANY, 1_000, 200_000, 10, 100, 0,
                                                True))]
             + [s.tx(k.OWNER, PlaceOrder("spot", ASK, 30_000 + n, 100, "gtc", 0, ANY, ((lot_id(n, 0), 100),), None))
                for n in range(offers)], k.NOW + 10)
    except BaseException:
        node.close()
        raise
    return d, node, s


def test_an_order_index_that_misses_an_open_offer_is_refused_at_start_up(tmp_path: Path) -> None:
    """``ix_orders`` is not part of the signed state: if it missed an open offer, the node would
    leave that offer out of its book. The escrowed units its account holds then exceed what its
    open offers hold, and the node refuses to start, naming the account."""
    import sqlite3

    d, node, _ = market_with_offers(tmp_path, 1)
    node.close()
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        assert db.execute("DELETE FROM ix_orders WHERE order_id = 'o-00000001'").rowcount == 1
        db.commit()
    with pytest.raises(InvalidBlock, match=r"account sun-co\.escrowed_g.*is 100, its open offers hold 0"):
        restarted(d)


def test_a_database_from_before_the_order_index_gets_it_filled_when_opened_for_writing(tmp_path: Path) -> None:
    """A file written before ``ix_orders`` existed: opened read-only it is read by scanning the
    orders (``has_order_index`` False, the account's list the same); opened for writing, the index
    is filled from the stored orders once."""
    import sqlite3

    from crev.ledger.messages.cancel_order import CancelOrder
    from crev.node.node import LedgerView
    from crev.service import queries

    d, node, s = market_with_offers(tmp_path, 3)
    try:
        seal(node, [s.tx(k.OWNER, CancelOrder("o-00000002"))], k.NOW + 20)
    finally:
        node.close()
    with closing(sqlite3.connect(d / DB_FILE)) as db:
        rows = db.execute("SELECT * FROM ix_orders ORDER BY seq").fetchall()
        assert rows == [("o-00000001", 1, "spot", k.OWNER, "ask", "open"),
                        ("o-00000002", 2, "spot", k.OWNER, "ask", "cancelled"),
                        ("o-00000003", 3, "spot", k.OWNER, "ask", "open")]
        db.execute("DROP TABLE ix_orders")
        db.execute("DELETE FROM meta WHERE k = 'ix_orders_filled'")
        db.commit()
    with closing(LedgerView(d)) as view:
        assert not view.store.has_order_index and view.loaded_in_full is None and checkpoint_of(view.state)
        got = queries.account_orders(view.state, view.store, k.OWNER, None, None, 0, 50)
        assert [(o["order_id"], o["status"]) for o in got["items"]] == [
            ("o-00000003", "open"), ("o-00000002", "cancelled"), ("o-00000001", "open")]
    with closing(Store(d / DB_FILE)) as store:
        assert store.has_order_index
        assert store.db.execute("SELECT * FROM ix_orders ORDER BY seq").fetchall() == rows
        assert store.open_order_ids() == ["o-00000001", "o-00000003"]
