"""The lazy read-only view (node/lazystate.py): it answers exactly what the full load answers, on a
ledger with blocks before and after its checkpoint; it refuses, naming what failed, a database
whose state entries were changed; it falls back to the full load when the stored bucket hashes
cannot be trusted or were never stored (an earlier version's database); and the node keeps its
write-ahead log bounded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from crev.audit.trace import state_proof, trace
from crev.cli import main
from crev.core.encoding import decode, encode
from crev.core.statetree import LazyStateTree, StateTree, bucket_index, key_hash32
from crev.errors import InvalidBlock
from crev.ledger.state import State
from crev.node.lazystate import LazyRecords, resident_records
from crev.node.node import DB_FILE, LedgerView
from crev.node.store import CHUNK_BUCKETS, Store
from crev.reports.export import lot_rows, retirement_rows
from crev.reports.marketdata import book_levels, market_rows
from crev.reports.report import participant_report, report_dict
from crev.reports.statements import monthly_statement
from tests.node import nodekit as k

ROOT = Path(__file__).resolve().parents[2]
PRE_LOT, TAIL_LOT = "dgc-0:20260601T0900", "dgc-1:20260601T0903"

# A ledger whose node dies (like kill -9) with blocks after its last checkpoint. Before the
# checkpoint: 3 devices × 3 readings, a transfer and a retirement (ret-00000001), a market with a
# trade. After it: 2 more readings per device, a transfer, a retirement of units from a lot of
# either side (ret-00000002), an offer of lots the handler picks itself (it scans every lot), a
# meter serial changed and a device registered (both consult the serial index).
_SCRIPT = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from crev.core.units import fiscal_year_bounds
from crev.ledger.messages.deposit_jpy import DepositJpy
from crev.ledger.messages.list_market import ListMarket
from crev.ledger.messages.place_order import PlaceOrder
from crev.ledger.messages.register_device import RegisterDevice
from crev.ledger.messages.retire import Retire
from crev.ledger.messages.transfer import Transfer
from crev.ledger.messages.update_device import UpdateDevice
from crev.ledger.records import ANY
from tests.node import nodekit as k

d = k.init_dir(Path(sys.argv[1]))
node = k.open_node(d, checkpoint_s=3600)
s = k.register_fleet(node, 3)
p0, p1 = fiscal_year_bounds(2026)
def ok(raw):
    r = node.submit_wait(raw)
    assert r.ok, r.error
for j in range(3):
    ok(k.batch(3, j))
ok(s.tx(k.OWNER, Transfer(k.BUYER, (("dgc-0:20260601T0900", 100),), "sale")))
ok(s.tx(k.BUYER, Retire((("dgc-0:20260601T0900", 40),), "Buyer Co", "re100", p0, p1, "JP", "one")))
ok(s.tx(k.OPERATOR, ListMarket("spot", "Spot", "continuous", ANY, 1, 10**9, 100, 100, 0, True)))
ok(s.tx(k.OPERATOR, DepositJpy(k.BUYER, 10_000, "BANK-1")))
ok(s.tx(k.OWNER, PlaceOrder("spot", "ask", 1_000_000, 600, "gtc", 0, ANY, (("dgc-2:20260601T0900", 300),
                                                                           ("dgc-2:20260601T0901", 300)), None)))
ok(s.tx(k.BUYER, PlaceOrder("spot", "bid", 1_000_000, 400, "gtc", 0, ANY, (), None)))
node.flush()
for j in range(3, 5):
    ok(k.batch(3, j))
ok(s.tx(k.OWNER, Transfer(k.BUYER, (("dgc-1:20260601T0903", 50),), "tail sale")))
ok(s.tx(k.BUYER, Retire((("dgc-1:20260601T0903", 30), ("dgc-0:20260601T0900", 10)), "Buyer Co", "re100", p0, p1,
                        "JP", "two")))
ok(s.tx(k.OWNER, PlaceOrder("spot", "ask", 2_000_000, 500, "gtc", 0, ANY, (), None)))
ok(s.tx(k.OPERATOR, UpdateDevice("dgc-2", (("meter_serial", "SN-NEW"),))))
ok(s.tx(k.OPERATOR, RegisterDevice("dgc-3", k.OWNER, k.key("dev/dgc-3").public_key, k.CAPACITY_W,
                                   k.T0 - 30 * 86400, 35_000_000, 139_000_000, "tokyo", "SN-0003",
                                   k.T0 + 5 * 365 * 86400, False, "solar_pv")))
print(node.state.height, node.state.tree.root().hex(), flush=True)
node.verifier.close()
os._exit(0)  # like kill -9: no final checkpoint
"""


def died_with_a_tail(d: Path) -> tuple[int, bytes]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(d), str(ROOT)], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    height, root = out.stdout.split()
    return int(height), bytes.fromhex(root)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, bytes]:
    d = tmp_path_factory.mktemp("lazy") / "ledger"
    height, root = died_with_a_tail(d)
    return d, height, root


@pytest.fixture
def ledger(built: tuple[Path, int, bytes], tmp_path: Path) -> Path:
    """A fresh copy of the built ledger (tests change it)."""
    d = tmp_path / "ledger"
    shutil.copytree(built[0], d)
    return d


def opened(d: Path, **kw: Any) -> LedgerView:
    return LedgerView(d, **kw)


def answers(v: LedgerView) -> dict[str, Any]:
    """What the readers answer from a view (as JSON-ready data)."""
    st, store = v.state, v.store
    out: dict[str, Any] = {"height": st.height, "root": st.tree.root().hex(), "supply": st.supply.to_value()}
    for acct in (k.OWNER, k.BUYER, k.OPERATOR):
        out[f"report {acct}"] = report_dict(participant_report(st, store, acct), st.last_time)
        out[f"statement {acct}"] = repr(monthly_statement(st, store, acct, 202607))
    out["one site"] = report_dict(participant_report(st, store, k.OWNER, only_site="dgc-1"), st.last_time)
    first = st.lots[PRE_LOT].first_unit
    for ident in (PRE_LOT, TAIL_LOT, "dgc-2:20260601T0900", str(first + 5), "ret-00000001", "ret-00000002"):
        out[f"trace {ident}"] = trace(store, st, ident)
    for key in (f"l/{PRE_LOT}", f"l/{TAIL_LOT}", "r/dgc-0/1", "r/dgc-2/5", "t/ret-00000002", "d/dgc-3",
                f"a/{k.BUYER}", "m/spot", "l/no-such-lot", "r/dgc-9/1", "t/ret-00000099"):
        out[f"proof {key}"] = state_proof(store, st, key)
    out["markets"] = market_rows(st)
    out["book"] = book_levels(st, "spot")
    out["lots"] = lot_rows(st)
    out["retirements"] = retirement_rows(st)
    return out


def as_json(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=repr)


def test_the_lazy_view_answers_what_the_full_load_answers(built: tuple[Path, int, bytes]) -> None:
    d, height, root = built
    with closing(k.sql(d)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
    assert 0 < cp < height  # blocks on both sides of the checkpoint
    lazy, full = opened(d), opened(d, full=True)
    try:
        assert lazy.loaded_in_full is None and full.loaded_in_full == "asked for"
        assert isinstance(lazy.state.tree, LazyStateTree) and not isinstance(full.state.tree, LazyStateTree)
        assert lazy.state.height == full.state.height == height
        assert lazy.state.tree.root() == full.state.tree.root() == root == k.replay_root(d)[1]
        a, b = answers(lazy), answers(full)
        for name in b:
            assert as_json(a[name]) == as_json(b[name]), name
        for name in ("trace dgc-2:20260601T0900", "trace ret-00000002", "proof r/dgc-9/1"):
            assert "'verified': False" not in repr(a[name]) and "'signature_verified': False" not in repr(a[name])
        # every record, and the indexes the state keeps beside them
        assert sorted(lazy.state.all_keys()) == sorted(full.state.all_keys())
        for key in full.state.all_keys():
            assert lazy.state.value_of(key) == full.state.value_of(key), key
        assert dict(lazy.state.meter_serials) == full.state.meter_serials
        assert "SN-NEW" in lazy.state.meter_serials and "SN-0002" not in lazy.state.meter_serials
    finally:
        lazy.close()
        full.close()


def test_a_lazy_view_reads_only_what_it_is_asked_for(built: tuple[Path, int, bytes]) -> None:
    d = built[0]
    v = opened(d)
    try:
        tree = v.state.tree
        assert isinstance(tree, LazyStateTree)
        loaded = {b for b in range(1 << tree.depth) if tree.loaded(b)}
        assert 0 < len(loaded) < 100  # what the tail's blocks touched, not every entry's bucket
        readings = v.state.readings
        assert dict.__len__(readings) == 6  # the tail's own (its offer read every lot: the handler scans them)
        b = bucket_index("r/dgc-1/2", tree.depth)
        assert not tree.loaded(b)
        assert readings[("dgc-1", 2)].lot_id == "dgc-1:20260601T0901"
        assert tree.loaded(b) and dict.__len__(readings) == 7
        assert len(readings) == 15 and dict.__len__(readings) == 15  # iterating fetches the rest
    finally:
        v.close()


def test_a_changed_state_entry_is_refused_naming_it(ledger: Path) -> None:
    key = "r/dgc-2/1"  # a reading record no later block touches
    with closing(k.sql(ledger)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        value = decode(bytes(db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0]))
        value[3] += 1  # the height it was accepted at: a plausible record, only not the one the chain holds
        db.execute("UPDATE state SET value = ? WHERE key = ?", (encode(value), key))
    b = bucket_index(key, 16)
    msg = (rf"^state: state bucket {b} as stored \(\d+ entries: .*\) does not hash to the bucket hash that block "
           rf"{cp}'s signed state root commits to: the database was changed after the checkpoint was written; "
           r"refusing to read it: run `crev verify`$")
    v = opened(ledger)
    try:
        assert v.loaded_in_full is None  # the open itself did not need that bucket...
        assert v.state.readings[("dgc-2", 2)].lot_id == "dgc-2:20260601T0901"  # ...nor does another record
        with pytest.raises(InvalidBlock, match=msg):
            v.state.readings.get(("dgc-2", 1))
        with pytest.raises(InvalidBlock, match=msg):  # and again: a refused bucket is never taken as read
            v.state.prove(key)
    finally:
        v.close()
    res = CliRunner().invoke(main, ["trace", str(ledger), "dgc-2:20260601T0900"])  # its reading's state proof
    assert res.exit_code == 2 and f"state bucket {b} as stored" in res.output, res.output


def test_a_checkpoint_header_the_sequencer_did_not_sign_is_refused(ledger: Path) -> None:
    """The bucket hashes are trusted because they recompute the root in a header the sequencer
    signed: the view checks that signature."""
    with closing(k.sql(ledger)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        sig = bytes(db.execute("SELECT signature FROM blocks WHERE height = ?", (cp,)).fetchone()[0])
        db.execute("UPDATE blocks SET signature = ? WHERE height = ?", (bytes([sig[0] ^ 1]) + sig[1:], cp))
    with pytest.raises(InvalidBlock, match=rf"^block.signature: the checkpoint block {cp} is not signed by the "
                                           r"genesis sequencer key: run `crev verify`$"):
        LedgerView(ledger)


@pytest.mark.parametrize("change", ["delete", "insert"])
def test_a_removed_or_added_state_entry_is_refused(ledger: Path, change: str) -> None:
    key = "r/dgc-0/2"
    with closing(k.sql(ledger)) as db:
        if change == "delete":
            db.execute("DELETE FROM state WHERE key = ?", (key,))
        else:
            key = "r/dgc-0/99"
            db.execute("INSERT INTO state VALUES (?, ?, ?)", (key_hash32(key), key, encode([0, b"", "", 1])))
    v = opened(ledger)
    try:
        with pytest.raises(InvalidBlock, match=rf"state bucket {bucket_index(key, 16)} as stored"):
            v.state.readings.get(("dgc-0", 2 if change == "delete" else 99))
    finally:
        v.close()


def test_a_changed_entry_the_open_needs_fails_the_open(ledger: Path) -> None:
    with closing(k.sql(ledger)) as db:
        supply = decode(bytes(db.execute("SELECT value FROM state WHERE key = 's'").fetchone()[0]))
        supply[1] += 1
        db.execute("UPDATE state SET value = ? WHERE key = 's'", (encode(supply),))
    with pytest.raises(InvalidBlock, match=rf"^state: state bucket {bucket_index('s', 16)} as stored"):
        LedgerView(ledger)


def resign_checkpoint(d: Path, key: str, change: Any) -> int:
    """What only the sequencer key's holder could do: change the entry ``key`` of the checkpoint at
    the tip, recompute its bucket hash and the state root, and sign the header again."""
    from crev.core.statetree import bucket_span
    from crev.ledger.block import Header

    with closing(k.sql(d)) as db:
        cp = int(db.execute("SELECT v FROM meta WHERE k = 'checkpoint_height'").fetchone()[0])
        assert cp == int(db.execute("SELECT MAX(height) FROM blocks").fetchone()[0])
        value = encode(change(decode(bytes(db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()[0]))))
        db.execute("UPDATE state SET value = ? WHERE key = ?", (value, key))
        b = bucket_index(key, 16)
        rows = [(str(a), bytes(v)) for a, v in db.execute("SELECT key, value FROM state WHERE kh >= ? AND kh < ?",
                                                            bucket_span(b, 16))]
        tree = StateTree(16)
        for a, v in rows:
            tree.set(a, v)
        chunk, at = divmod(b, CHUNK_BUCKETS)
        row = bytearray(db.execute("SELECT hashes FROM state_buckets WHERE chunk = ?", (chunk,)).fetchone()[0])
        row[at * 32:(at + 1) * 32] = tree.bucket_hashes()[b]
        db.execute("UPDATE state_buckets SET hashes = ? WHERE chunk = ?", (bytes(row), chunk))
        packed = b"".join(bytes(r[0]) for r in db.execute("SELECT hashes FROM state_buckets ORDER BY chunk"))
        root = LazyStateTree(16, packed, lambda _b: []).root()
        old = Header.decode(bytes(db.execute("SELECT header FROM blocks WHERE height = ?", (cp,)).fetchone()[0]))
        new = Header(old.chain_id, old.height, old.time, old.prev_hash, old.tx_root, old.results_root, root,
                     old.tx_count)
        db.execute("UPDATE blocks SET header = ?, hash = ?, signature = ? WHERE height = ?",
                   (new.encode(), new.hash, k.key("sequencer").sign(new.encode()), cp))
    return cp


def test_a_record_that_breaks_its_own_invariant_is_refused_when_read(ledger: Path) -> None:
    """Even with its bucket hash and the header's state root made to match."""
    k.open_node(ledger).close()  # the checkpoint at the tip

    def grow(value: list[Any]) -> list[Any]:
        value[2] += 1000  # quantity_g: the segments no longer cover it
        return value

    cp = resign_checkpoint(ledger, f"l/{TAIL_LOT}", grow)
    v = opened(ledger)
    try:
        assert v.loaded_in_full is None
        assert v.state.lots[PRE_LOT].quantity_g == k.PER_READING_G
        with pytest.raises(InvalidBlock, match=rf"^lot {TAIL_LOT}: segments do not cover the issued quantity "
                                               rf"\(state loaded at height {cp}; refusing to read it: run `crev "
                                               r"verify`\)$"):
            v.state.lots[TAIL_LOT]
    finally:
        v.close()
    # the node starts lazily too (the check over every lot is `crev verify`'s) and refuses the lot when read
    node = k.open_node(ledger, start=False)
    try:
        with pytest.raises(InvalidBlock, match=rf"^lot {TAIL_LOT}: segments do not cover the issued quantity "
                                               rf"\(state loaded at height {cp}; refusing to read it"):
            node.state.lots[TAIL_LOT]
    finally:
        node.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "other height"])
def test_bucket_hashes_that_do_not_match_the_header_are_not_used(ledger: Path, damage: str) -> None:
    """The bucket hashes are derived data: if they do not recompute the signed root (or belong to
    another height) the view loads the entries themselves in full, which checks them, and says so."""
    with closing(k.sql(ledger)) as db:
        row = bytes(db.execute("SELECT hashes FROM state_buckets WHERE chunk = 3").fetchone()[0])
        if damage == "flip":
            db.execute("UPDATE state_buckets SET hashes = ? WHERE chunk = 3", (row[:100] + bytes([row[100] ^ 1])
                                                                                + row[101:],))
        elif damage == "truncate":
            db.execute("UPDATE state_buckets SET hashes = ? WHERE chunk = 3", (row[:-32],))
        else:
            db.execute("UPDATE meta SET v = ? WHERE k = 'state_buckets_height'", (b"2",))
    full = opened(ledger, full=True)
    v = opened(ledger)
    try:
        assert v.loaded_in_full is not None
        assert ("do not recompute block" in v.loaded_in_full if damage != "other height"
                else "of height 2" in v.loaded_in_full)
        assert as_json(answers(v)) == as_json(answers(full))
    finally:
        v.close()
        full.close()


def test_an_earlier_version_s_database_opens_and_is_brought_up_to_date(ledger: Path, built: tuple[Path, int, bytes]
                                                                       ) -> None:
    with closing(k.sql(ledger)) as db:
        db.executescript("""
            CREATE TABLE state_old (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
            INSERT INTO state_old SELECT key, value FROM state;
            DROP TABLE state;
            ALTER TABLE state_old RENAME TO state;
            DROP INDEX ix_readings_start;
            DROP TABLE state_buckets;
            DELETE FROM meta WHERE k = 'state_buckets_height';
        """)
        keys = [str(r[0]) for r in db.execute("SELECT key FROM state")]
    full = opened(built[0], full=True)
    try:
        expected = as_json(answers(full))
    finally:
        full.close()
    v = opened(ledger)
    try:
        assert v.loaded_in_full is not None and "earlier version" in v.loaded_in_full
        assert not v.store.has_key_hashes
        assert as_json(answers(v)) == expected
    finally:
        v.close()
    node = k.open_node(ledger)  # migrates, replays the tail, and checkpoints it with bucket hashes
    node.close()
    with closing(k.sql(ledger)) as db:
        assert db.execute("SELECT COUNT(*) FROM state WHERE kh IS NULL").fetchone()[0] == 0
        assert all(kh == key_hash32(key) for key, kh in db.execute("SELECT key, kh FROM state"))
        assert {str(r[0]) for r in db.execute("SELECT key FROM state")} >= set(keys)
        indexes = {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"state_small_kinds_2", "ix_readings_start"} <= indexes
        assert db.execute("SELECT COUNT(*) FROM state_buckets").fetchone()[0] == (1 << 16) // CHUNK_BUCKETS
    v = opened(ledger)
    try:
        assert v.loaded_in_full is None
        assert as_json(answers(v)) == expected
    finally:
        v.close()


def test_a_node_adds_bucket_hashes_to_a_checkpoint_stored_without_them(ledger: Path) -> None:
    node = k.open_node(ledger)
    node.close()  # now the checkpoint is at the tip
    with closing(k.sql(ledger)) as db:
        db.execute("DELETE FROM state_buckets")
        db.execute("DELETE FROM meta WHERE k = 'state_buckets_height'")
    v = opened(ledger)
    v.close()
    assert v.loaded_in_full is not None
    k.open_node(ledger).close()  # nothing to replay: it writes them on their own
    v = opened(ledger)
    try:
        assert v.loaded_in_full is None
    finally:
        v.close()


def test_a_view_with_a_tail_keeps_the_index_queries_on_their_indexes(built: tuple[Path, int, bytes]) -> None:
    """The TEMP views over the file's index and the tail's: SQLite pushes each query's terms into
    both sides, so the readers' queries search, they do not scan."""
    v = opened(built[0])
    try:
        db = v.store.db
        assert db.execute("SELECT type FROM sqlite_temp_master WHERE name = 'ix_moves'").fetchone()[0] == "view"
        queries = [
            ("SELECT lot_id, first_unit, quantity_g FROM ix_lots WHERE first_unit <= ? ORDER BY first_unit DESC "
             "LIMIT 1", (10,)),
            ("SELECT height, tx_hash FROM ix_lots WHERE lot_id = ?", (PRE_LOT,)),
            ("SELECT m.kind FROM ix_moves m LEFT JOIN txs t ON t.hash = m.tx_hash AND t.height = m.height "
             "WHERE m.lot_id = ? ORDER BY m.height, t.idx, m.kind IN ('retire', 'cancel'), m.rowid", (PRE_LOT,)),
            ("SELECT seq FROM ix_readings WHERE device_id = ? AND interval_start >= ? AND interval_start < ? "
             "ORDER BY seq", ("dgc-0", 0, 2**40)),
            ("SELECT lot_id FROM ix_lots WHERE owner = ? UNION SELECT lot_id FROM ix_moves WHERE counterparty = ? "
             "AND kind IN ('transfer', 'trade')", (k.BUYER, k.BUYER)),
            ("SELECT interval_start FROM ix_readings WHERE device_id = ? AND owner = ? ORDER BY seq",
             ("dgc-0", k.OWNER)),
            ("SELECT device_id, SUM(generation_wh) FROM ix_readings WHERE interval_start >= ? AND interval_start < ? "
             "GROUP BY device_id", (0, 2**40)),
        ]
        for q, args in queries:
            plan = " | ".join(str(r[3]) for r in db.execute("EXPLAIN QUERY PLAN " + q, args))
            assert "SCAN main." not in plan and "SCAN temp." not in plan, (q, plan)
            assert "SEARCH main." in plan and "SEARCH temp.tail_" in plan, (q, plan)
        # the tail's movements come after the file's, in order
        kinds = [r[0] for r in db.execute(queries[2][0], queries[2][1])]
        assert kinds == ["transfer", "retire", "retire"]
        # the file's: transfer, retire, a trade of two lots; the tail's: transfer, a retirement of two lots
        assert db.execute("SELECT COUNT(*) FROM main.ix_moves").fetchone()[0] == 4
        assert db.execute("SELECT COUNT(*) FROM ix_moves").fetchone()[0] == 7
    finally:
        v.close()


def test_a_view_without_a_tail_uses_the_file_s_tables(tmp_path: Path) -> None:
    d = k.init_dir(tmp_path / "ledger")
    node = k.open_node(d)
    k.register_fleet(node, 1)
    assert node.submit_wait(k.batch(1, 0)).ok
    node.close()
    v = opened(d)
    try:
        assert v.loaded_in_full is None
        assert v.store.db.execute("SELECT COUNT(*) FROM sqlite_temp_master").fetchone()[0] == 0
        assert v.state.lots["dgc-0:20260601T0900"].quantity_g == k.PER_READING_G
    finally:
        v.close()


def test_the_write_ahead_log_stays_bounded_during_a_long_ingest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checkpoints as often as the writer's pace lets (``checkpoint_s`` 20 ms, then each one waits
    until the writer has been idle three times as long as it wrote) over 300 batches: the log is
    emptied after each state checkpoint, so it never holds more than about one checkpoint's pages,
    however much goes through it. What each checkpoint put in the log is its size when the writer
    empties it (read there: a thread sampling the file missed growth when the cores were busy)."""
    d = k.init_dir(tmp_path / "ledger")
    wal = d / (DB_FILE + "-wal")
    filled: list[int] = []  # the log's size as each checkpoint began emptying it
    emptied: list[int] = []  # and once it had
    real = Store.checkpoint_wal

    def checkpoint_wal(store: Store) -> None:
        if store.path == d / DB_FILE:
            filled.append(wal.stat().st_size)
        real(store)
        if store.path == d / DB_FILE:
            emptied.append(wal.stat().st_size)

    monkeypatch.setattr(Store, "checkpoint_wal", checkpoint_wal)
    node = k.open_node(d, checkpoint_s=0.02)
    try:
        k.register_fleet(node, 20)
        for j in range(300):
            assert node.submit_wait(k.batch(20, j)).ok
        node.flush()
    finally:
        node.close()
    # every checkpoint emptied the log; how many there were and how big each was follows the
    # writer's pace (fewer and bigger when the cores are busy)
    assert len(filled) >= 5 and emptied == [0] * len(filled), (filled, emptied)
    # one checkpoint is one transaction: at most every page of the state file once (2 MiB of bucket
    # hashes in the first; later ones hold the blocks gathered while the previous was written),
    # against far more in all, which a log never emptied would have held
    state_file = (d / DB_FILE).stat().st_size
    assert max(filled) <= state_file + (64 << 10) and sum(filled) > 2 * state_file, (filled, state_file)


def test_lazy_records_behave_as_dicts() -> None:
    from crev.node.lazystate import LazyRecords, SerialIndex

    stored = {"a": 1, "b": 2, "c": 3}
    fetched: list[str] = []

    def fetch(key: str) -> int | None:
        fetched.append(key)
        return stored.get(key)

    def fetch_all(held: Any) -> Iterator[tuple[str, int]]:
        return ((key, v) for key, v in stored.items() if not held(key))

    m: LazyRecords[str, int] = LazyRecords(fetch, fetch_all)
    assert m["a"] == 1 and m.get("b") == 2 and "c" in m and m.get("x") is None and "x" not in m
    with pytest.raises(KeyError):
        m["x"]
    assert fetched == ["a", "b", "c", "x", "x", "x"]
    m["a"] = 10
    assert m.pop("b") == 2 and "b" not in m and m.get("b", 7) == 7
    del m["c"]
    assert "c" not in m and m.setdefault("c", 5) == 5 and m["c"] == 5
    assert m.setdefault("a", 0) == 10
    assert sorted(m.items()) == [("a", 10), ("c", 5)] and len(m) == 2
    assert m.get("x") is None and fetched.count("x") == 3  # complete: no more fetching
    serials = SerialIndex({"d1": SimpleNamespace(meter_serial="S1")})  # type: ignore[dict-item]
    assert serials.get("S1") == "d1" and "S2" not in serials
    serials["S2"] = "d2"
    assert dict(serials) == {"S1": "d1", "S2": "d2"}


def test_lazy_state_tree_matches_the_plain_tree() -> None:
    """Random keys: the lazy tree built from the packed bucket hashes gives the same root, the same
    changes' roots and the same proofs as the plain tree; a changed bucket is refused."""
    import random

    from crev.core.statetree import BucketMismatch, StateTree, pack_bucket_hashes

    rnd = random.Random(7)
    depth = 8
    items = {f"k/{rnd.randrange(10**9)}": rnd.randbytes(rnd.randrange(1, 40)) for _ in range(2000)}
    plain = StateTree(depth)
    for key, value in items.items():
        plain.set(key, value)
    fetched: list[int] = []

    def fetch(b: int) -> list[tuple[str, bytes]]:
        fetched.append(b)
        return [(key, v) for key, v in items.items() if bucket_index(key, depth) == b]

    lazy = LazyStateTree(depth, pack_bucket_hashes(depth, plain.bucket_hashes()), fetch)
    assert lazy.root() == plain.root() and fetched == []
    keys = list(items)
    for key in [*rnd.sample(keys, 50), "k/absent", "k/also-absent"]:
        assert lazy.prove(key, items.get(key)) == plain.prove(key, items.get(key))
    for key in rnd.sample(keys, 40):
        lazy.delete(key)
        plain.delete(key)
    for n in range(40):
        lazy.set(f"k/new-{n}", b"v")
        plain.set(f"k/new-{n}", b"v")
        assert lazy.root() == plain.root()
    assert len(set(fetched)) == len(fetched) < 1 << depth
    items[keys[0]] = b"changed"
    b = bucket_index(keys[0], depth)
    fresh = LazyStateTree(depth, pack_bucket_hashes(depth, StateTree(depth).bucket_hashes()), fetch)
    with pytest.raises(BucketMismatch):
        fresh.load(b)
    with pytest.raises(ValueError, match="depth 8 needs 8192"):
        LazyStateTree(depth, b"\x00" * 64, fetch)


def test_the_node_reads_its_checkpoint_lazily_holding_the_small_kinds_whole(built: tuple[Path, int, bytes]) -> None:
    """A node starts like a view (node/lazystate.py), but holds every device, account and market and
    the open orders at once (its check stage reads them without the lock); no lot or reading record
    and no closed order yet."""
    d = built[0]
    copy = d.parent / "node-copy"
    shutil.copytree(d, copy)
    node = k.open_node(copy, start=False)
    try:
        st: State = node.state
        assert isinstance(st.lots, LazyRecords) and isinstance(st.tree, LazyStateTree)
        # the two offers are open (600 g, 400 sold; 500 g), the bid that bought 400 g is filled: on disk
        assert resident_records(st) == {"lots": 0, "readings": 0, "retirements": 0, "tallies": 0, "controls": 0,
                                        "orders": 2}
        held = {oid: (o.side, o.remaining_g, o.status) for oid, o in dict.items(st.orders)}
        assert held == {"o-00000001": ("ask", 200, "open"), "o-00000003": ("ask", 500, "open")}
        assert st.orders["o-00000002"].status == "filled" and resident_records(st)["orders"] == 3
        assert isinstance(st.devices, LazyRecords) and st.devices.resident() == len(st.devices) > 0
        assert st.lots[PRE_LOT].quantity_g == k.PER_READING_G
        assert resident_records(st)["lots"] == 1
    finally:
        node.close()
    with closing(Store(copy / DB_FILE, readonly=True)) as store:
        stored = store.bucket_hashes()
        assert stored is not None and stored[0] == store.checkpoint_height() == built[1]
